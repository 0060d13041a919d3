package tap

import (
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	gstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// txQueueLen bounds the packets waiting for the writer, like a NIC's
// transmit ring (and Linux's default txqueuelen).
const txQueueLen = 1000

// txQueue hands packets from the stack's goroutines to the writer.
type txQueue struct {
	mu            sync.Mutex // guards the fields below
	notEmpty      sync.Cond  // the writer waits here
	notFull       sync.Cond  // senders wait here
	pkts          []*gstack.PacketBuffer
	writerWaiting bool
	writing       bool // the writer has a batch in hand
	closed        bool
}

func (q *txQueue) init() {
	q.notEmpty.L = &q.mu
	q.notFull.L = &q.mu
	q.pkts = make([]*gstack.PacketBuffer, 0, txQueueLen)
}

// enqueue queues pkts, holding a reference to each until it is written.
func (q *txQueue) enqueue(pkts []*gstack.PacketBuffer) (int, tcpip.Error) {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, pkt := range pkts {
		for len(q.pkts) >= txQueueLen && !q.closed {
			q.wakeWriter()
			q.notFull.Wait()
		}
		if q.closed {
			return i, &tcpip.ErrClosedForSend{}
		}
		q.pkts = append(q.pkts, pkt.IncRef())
	}
	q.wakeWriter()
	return len(pkts), nil
}

// wakeWriter wakes the writer if it is waiting for packets. q.mu is held.
func (q *txQueue) wakeWriter() {
	if q.writerWaiting {
		q.writerWaiting = false
		q.notEmpty.Signal()
	}
}

// take waits for packets and swaps them for the (empty) batch slice: the
// last batch taken has been written. It returns false when the queue is
// closed.
func (q *txQueue) take(batch []*gstack.PacketBuffer) ([]*gstack.PacketBuffer, bool) {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.writing = false
	for len(q.pkts) == 0 && !q.closed {
		q.writerWaiting = true
		q.notEmpty.Wait()
	}
	q.writerWaiting = false
	if q.closed {
		return batch, false
	}
	batch, q.pkts = q.pkts, batch[:0]
	q.writing = true
	q.notFull.Broadcast()
	return batch, true
}

// idle reports whether every packet queued so far has been written.
func (q *txQueue) idle() bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.closed || len(q.pkts) == 0 && !q.writing
}

func (q *txQueue) close() {
	q.mu.Lock()
	defer q.mu.Unlock()
	q.closed = true
	q.notEmpty.Broadcast()
	q.notFull.Broadcast()
}

// drain drops what the writer left behind; call it after the writer exits.
func (q *txQueue) drain() {
	q.mu.Lock()
	defer q.mu.Unlock()
	for i, pkt := range q.pkts {
		pkt.DecRef()
		q.pkts[i] = nil
	}
	q.pkts = q.pkts[:0]
}

// writer is the state of the goroutine that writes frames.
type writer struct {
	e       *endpoint
	vnet    [vnetHdrLen]byte
	iov     []unix.Iovec
	errno   unix.Errno
	writeFn func(fd uintptr) bool // w.write, bound once so writes do not allocate
}

func (e *endpoint) writeLoop() {
	defer e.wg.Done()
	w := &writer{e: e, iov: make([]unix.Iovec, 0, 16)}
	w.writeFn = w.write
	batch := make([]*gstack.PacketBuffer, 0, txQueueLen)
	for {
		var ok bool
		batch, ok = e.tx.take(batch)
		if !ok {
			return
		}
		for i, pkt := range batch {
			w.send(pkt)
			pkt.DecRef()
			batch[i] = nil
		}
		batch = batch[:0]
	}
}

// send writes one frame with writev(2), straight from the packet's buffers.
func (w *writer) send(pkt *gstack.PacketBuffer) {
	e := w.e
	iov := w.iov[:0]
	if e.vnet {
		encodeVnetHdr(&w.vnet, pkt)
		iov = append(iov, unix.Iovec{Base: &w.vnet[0]})
		iov[0].SetLen(vnetHdrLen)
	}
	size := 0
	views, off := pkt.AsViewList()
	for v := views.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if off >= len(b) {
			off -= len(b)
			continue
		}
		b = b[off:]
		off = 0
		iov = append(iov, unix.Iovec{Base: &b[0]})
		iov[len(iov)-1].SetLen(len(b))
		size += len(b)
	}
	w.iov = iov
	err := e.rc.Write(w.writeFn)
	clear(iov) // keep no pointers into buffers the pool will reuse
	if err != nil || w.errno != 0 {
		// EIO while the interface is down, EINVAL for a frame the kernel
		// will not take: drop it, as a NIC would.
		e.counters.txErrors.Add(1)
		return
	}
	e.counters.txFrames.Add(1)
	e.counters.txBytes.Add(uint64(size))
}

func (w *writer) write(fd uintptr) bool {
	_, _, errno := unix.Syscall(unix.SYS_WRITEV, fd, uintptr(unsafe.Pointer(&w.iov[0])), uintptr(len(w.iov)))
	if errno == unix.EAGAIN {
		return false
	}
	w.errno = errno
	return true
}
