// The lesson page: steps through a run's events, forward and back, with
// the event list and its ladder, the event by layer, the TCB, RFC 793's
// state diagram and the time-sequence graph following one cursor.
//
// The model comes from nsftp (package lesson): the rows of the list, the
// bands of bulk data, each socket's states and TCB samples, and the run's
// events themselves as the JSON lines of --record. This script draws; it
// infers nothing about the run. All text from the run is set with
// textContent, never parsed as HTML.
'use strict';
(() => {
  // Row kinds and flags: the numbers of lesson/model.go.
  const K = { RUN: 0, HOST: 1, CALL: 2, RESULT: 3, SEG: 4, STATE: 5, FTP: 6, CONFIG: 7, DROP: 8, TCPEV: 9, BAND: 10 };
  const F = {
    RETRANS: 1, LOST: 2, ERROR: 4, SPLIT: 8, CMD: 16, REPLY: 32, DOPEN: 64, DCLOSE: 128, UDP: 256,
    OTHER: 512, SYN: 1024, FIN: 2048, RST: 4096, FTPSIDE: 8192, IN: 16384, BANDEV: 32768,
  };
  const SHAPE = { NONE: 0, ARROW: 1, CALL: 2, STATE: 3, BAND: 4, NOTE: 5, LOST: 6, MSG: 7 };
  const LABEL = ['', 'control', 'data', 'dhcp', 'dns'];
  // The ladder's lanes in a row's strip: [side][lane] (other, control, data).
  const LX = [[22, 22, 50], [178, 178, 150]];
  const SVGNS = 'http://www.w3.org/2000/svg';
  const ROWS = ['k', 'at', 't', 'h', 'fd', 'lb', 'ln', 'ln2', 'tx', 'x', 'fl', 'b', 'cn', 'rt'];
  const BANDS = ['first', 'last', 'row', 'at', 't0', 't1', 'h', 'fd', 'lb', 'side', 'cn', 'segs', 'retrans', 'drops', 'bytes', 'tx'];
  const STATES = ['at', 'h', 'fd', 'from_', 'to', 'cause', 'ln'];
  const TCBS = ['at', 'h', 'fd', 'ln'];
  const ZOOMS = [0.75, 0.85, 1, 1.15, 1.3, 1.5, 1.75, 2, 2.4];

  const $ = (id) => document.getElementById(id);
  const cfg = JSON.parse($('config').textContent || '{}');
  const el = (tag, cls, text) => {
    const e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = String(text);
    return e;
  };
  const svg = (tag, attrs) => {
    const e = document.createElementNS(SVGNS, tag);
    for (const k in attrs) e.setAttribute(k, attrs[k]);
    return e;
  };
  const ms = (us) => (us / 1000).toFixed(3);
  const dur = (ns) => {
    if (ns === undefined || ns === null) return '';
    if (ns < 1e3) return ns + ' ns';
    if (ns < 1e6) return (ns / 1e3).toFixed(1) + ' µs';
    if (ns < 1e9) return (ns / 1e6).toFixed(3) + ' ms';
    return (ns / 1e9).toFixed(3) + ' s';
  };
  const u32 = (v) => ((v % 4294967296) + 4294967296) % 4294967296;

  // ---- A run: the model, and what the page derives to look things up ----

  class Run {
    constructor(index) {
      this.index = index;
      this.meta = { title: '', hosts: [], conns: [], stateNames: [], bands: false };
      this.rows = {}; ROWS.forEach((k) => { this.rows[k] = []; });
      this.bands = {}; BANDS.forEach((k) => { this.bands[k] = []; });
      this.st = {}; STATES.forEach((k) => { this.st[k] = []; });
      this.tcb = {}; TCBS.forEach((k) => { this.tcb[k] = []; });
      this.lineBytes = null; this.lineOff = null; this.lineObjs = []; this.cache = new Map();
      this.expanded = new Set();
      this.cursor = -1;
      this.disp = new Int32Array(0);
      this.graph = null;
      this.decoder = new TextDecoder();
    }
    get n() { return this.rows.k.length; }

    apply(d) {
      const take = (dst, src, names) => {
        if (!src) return;
        const from = src.from || 0;
        for (const k of names) {
          const s = column(src[k]);
          if (from === 0) { dst[k] = s.slice ? s : []; continue; }
          const a = dst[k];
          a.length = Math.min(a.length, from);
          for (let i = 0; i < s.length; i++) a.push(s[i]);
        }
      };
      take(this.rows, d.rows, ROWS);
      take(this.bands, d.bandRows, BANDS);
      take(this.st, d.st, STATES);
      take(this.tcb, d.tcb, TCBS);
      this.meta = {
        title: d.title, about: d.about, t0: d.t0, bands: d.bands, events: d.events,
        hosts: d.hosts || [], conns: d.conns || [], stateNames: d.stateNames || [], nlines: d.nlines, name: d.name,
      };
      if (d.graph) this.graph = d.graph;
      if (d.lines) {
        this.lineObjs.length = Math.min(this.lineObjs.length, d.linesFrom || 0);
        for (const l of d.lines) this.lineObjs.push(l);
      }
      this.reindex();
    }

    // setTexts takes a file's rows' texts: chunks of them, each a JSON
    // list gzip-compressed in base64, read when a row of theirs is shown.
    setTexts(chunks, size) {
      this.textChunks = chunks; this.textSize = size; this.textData = []; this.textLoading = new Set();
    }

    // text is row r's one line; undefined while its chunk is read.
    text(r) {
      if (!this.textChunks) return this.rows.tx[r];
      const c = Math.floor(r / this.textSize);
      const d = this.textData[c];
      if (d) return d[r - c * this.textSize];
      if (c < this.textChunks.length && !this.textLoading.has(c)) {
        this.textLoading.add(c);
        pending(1);
        gunzip(fromBase64(this.textChunks[c])).then((bytes) => {
          this.textData[c] = JSON.parse(this.decoder.decode(bytes));
          this.textLoading.delete(c);
          this.version++;
          pending(-1);
          redraw();
        });
      }
      return undefined;
    }

    // setChunks takes a file's JSON lines: chunks of them, each
    // gzip-compressed in base64, decompressed when one of their events is
    // first shown.
    setChunks(chunks, size) {
      this.chunks = chunks; this.chunkSize = size; this.chunkData = []; this.loading = new Set();
    }

    // line is the event of the run's line i, parsed; undefined while its
    // chunk is being decompressed (the panels are drawn again when it is
    // ready), null when there is none.
    line(i) {
      if (i === undefined || i === null || i < 0) return null;
      if (i < this.lineObjs.length && this.lineObjs[i]) return this.lineObjs[i];
      if (this.cache.has(i)) return this.cache.get(i);
      if (!this.chunks) return null;
      const c = Math.floor(i / this.chunkSize);
      if (c >= this.chunks.length) return null;
      const d = this.chunkData[c];
      if (!d) { this.want(c); return undefined; }
      const j = i - c * this.chunkSize;
      if (j + 1 >= d.off.length) return null;
      const o = parseEvent(this.decoder.decode(d.bytes.subarray(d.off[j], d.off[j + 1] - 1)));
      if (this.cache.size > 5000) this.cache.clear();
      this.cache.set(i, o);
      return o;
    }

    want(c) {
      if (this.loading.has(c)) return;
      this.loading.add(c);
      pending(1);
      gunzip(fromBase64(this.chunks[c])).then((bytes) => {
        const off = [0];
        for (let p = bytes.indexOf(10); p >= 0; p = bytes.indexOf(10, p + 1)) off.push(p + 1);
        off.push(bytes.length + 1);
        this.chunkData[c] = { bytes, off };
        this.loading.delete(c);
        pending(-1);
        redrawPanels();
      });
    }

    reindex() {
      const R = this.rows, n = this.n;
      this.sockStates = new Map();
      for (let i = 0; i < this.st.at.length; i++) {
        const key = this.st.h[i] + ':' + this.st.fd[i];
        if (!this.sockStates.has(key)) this.sockStates.set(key, []);
        this.sockStates.get(key).push(i);
      }
      this.sockTCB = new Map();
      for (let i = 0; i < this.tcb.at.length; i++) {
        const key = this.tcb.h[i] + ':' + this.tcb.fd[i];
        if (!this.sockTCB.has(key)) this.sockTCB.set(key, []);
        this.sockTCB.get(key).push(i);
      }
      for (const list of this.sockTCB.values()) list.sort((a, b) => this.tcb.at[a] - this.tcb.at[b]);
      this.sockConn = new Map();
      this.meta.conns.forEach((c, ci) => (c.socks || []).forEach(([h, fd]) => this.sockConn.set(h + ':' + fd, ci)));
      // The sockets, for the filter; the FTP dialogue's rows, to keep two
      // runs side by side at the same step; the rows where a state changed.
      const socks = new Map();
      this.ftpRows = [];
      this.hasState = new Uint8Array(n);
      let si = 0;
      const sat = this.st.at;
      for (let r = 0; r < n; r++) {
        if (R.fd[r] > 0 && R.h[r] >= 0) {
          const key = R.h[r] + ':' + R.fd[r];
          if (!socks.has(key) || (!socks.get(key) && R.lb[r])) socks.set(key, R.lb[r]);
        }
        if (R.k[r] === K.FTP && (R.fl[r] & F.FTPSIDE) && (R.fl[r] & (F.CMD | F.REPLY))) this.ftpRows.push(r);
        while (si < sat.length && sat[si] <= R.at[r]) { this.hasState[r] = 1; si++; }
      }
      this.sockets = [...socks.entries()].map(([key, lb]) => {
        const [h, fd] = key.split(':').map(Number);
        return { key, h, fd, lb };
      }).sort((a, b) => a.h - b.h || a.fd - b.fd);
    }

    hostName(h) { return h >= 0 && this.meta.hosts[h] ? this.meta.hosts[h].name : ''; }
    sockName(h, fd) {
      const lb = (this.sockets.find((s) => s.h === h && s.fd === fd) || {}).lb;
      return this.hostName(h) + ' fd' + fd + (lb ? ' ' + LABEL[lb] : '');
    }
    // rowAt is the first row whose moment is at or after seq.
    rowAt(seq) {
      const at = this.rows.at;
      let lo = 0, hi = at.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (at[mid] < seq) lo = mid + 1; else hi = mid; }
      return Math.min(lo, at.length - 1);
    }
    // lastAt is the index of the last entry of list (indices into a table
    // whose moments are ats) at or before m, or -1.
    static lastAt(list, ats, m) {
      if (!list) return -1;
      let lo = 0, hi = list.length;
      while (lo < hi) { const mid = (lo + hi) >> 1; if (ats[list[mid]] <= m) lo = mid + 1; else hi = mid; }
      return lo - 1;
    }
    moment(r) { return r >= 0 && r < this.n ? this.rows.at[r] : -1; }
    // before is the moment just before row r's events (a band shown as
    // one row: before the band's): what r changed is what happened after
    // it. It depends on the position only, so a link shows the same.
    before(r) {
      const b = this.rows.b[r];
      let first = r;
      if (b >= 0 && !this.meta.bands && !this.expanded.has(b)) first = this.bands.first[b];
      return first > 0 ? this.rows.at[first - 1] : 0;
    }
  }

  // parseEvent parses a JSON line. A number past 2^53 (netstack's
  // ssthresh before a loss is 2^63-1) is kept as its text, exact, where
  // the browser can tell (JSON.parse's source text).
  function parseEvent(s) {
    try {
      if (!/\d{16}/.test(s)) return JSON.parse(s);
      return JSON.parse(s, (k, v, ctx) => (typeof v === 'number' && !Number.isSafeInteger(v) && Number.isInteger(v) && ctx && ctx.source ? ctx.source : v));
    } catch (e) {
      return { kind: 'note', text: 'this line is not an event' };
    }
  }


  // column is a model's column: a list, or a typed array in base64.
  function column(v) {
    if (!v) return [];
    if (Array.isArray(v) || ArrayBuffer.isView(v)) return v;
    if (v.i32 !== undefined) { const b = fromBase64(v.i32); return new Int32Array(b.buffer, b.byteOffset, b.length >> 2); }
    if (v.f64 !== undefined) { const b = fromBase64(v.f64); return new Float64Array(b.buffer, b.byteOffset, b.length >> 3); }
    return [];
  }

  // pending counts chunks being decompressed, for whoever waits for the
  // panels to settle (the tests).
  let waiting = 0;
  function pending(d) {
    waiting += d;
    document.documentElement.dataset.pending = String(waiting);
  }

  // ---- The page's state ----

  const runs = [];
  let active = 0;
  let zoom = 1;
  let playTimer = null;
  const filter = { host: '', sock: '', kinds: new Set(['call', 'segment', 'state', 'ftp', 'other']) };
  const views = [];

  function kindOf(k) {
    switch (k) {
      case K.CALL: case K.RESULT: return 'call';
      case K.SEG: case K.DROP: case K.BAND: return 'segment';
      case K.STATE: return 'state';
      case K.FTP: return 'ftp';
      default: return 'other';
    }
  }

  function passes(run, r) {
    const R = run.rows;
    if (!filter.kinds.has(kindOf(R.k[r]))) return false;
    if (filter.host !== '' && R.h[r] !== Number(filter.host) && R.k[r] !== K.RUN) return false;
    if (filter.sock !== '') {
      const [h, fd] = filter.sock.split(':').map(Number);
      if (R.h[r] !== h || R.fd[r] !== fd) return false;
    }
    return true;
  }

  // The display list: the rows that pass the filters, a band of bulk
  // data one item (-(band+1)) unless opened.
  function buildDisplay(run) {
    const R = run.rows, n = run.n, out = [];
    let last = -1;
    for (let r = 0; r < n; r++) {
      if (!passes(run, r)) continue;
      const b = R.b[r];
      if (b >= 0 && !run.meta.bands && !run.expanded.has(b)) {
        if (b !== last) { out.push(-(b + 1)); last = b; }
        continue;
      }
      out.push(r);
    }
    run.disp = Int32Array.from(out);
  }
  const itemFirst = (run, it) => (it >= 0 ? it : run.bands.first[-it - 1]);
  const itemLast = (run, it) => (it >= 0 ? it : run.bands.last[-it - 1]);
  // dispPos is the display item that shows row r, or the last before it.
  function dispPos(run, r) {
    const d = run.disp;
    let lo = 0, hi = d.length;
    while (lo < hi) { const mid = (lo + hi) >> 1; if (itemFirst(run, d[mid]) <= r) lo = mid + 1; else hi = mid; }
    return lo - 1;
  }
  const shows = (run, it, r) => itemFirst(run, it) <= r && r <= itemLast(run, it);

  // ---- Moving ----

  function setCursor(run, r, how) {
    how = how || {};
    if (run.n === 0) return;
    r = Math.max(0, Math.min(run.n - 1, r));
    const b = run.rows.b[r];
    if (how.open && b >= 0 && !run.meta.bands && !run.expanded.has(b)) {
      run.expanded.add(b);
      buildDisplay(run);
    }
    run.cursor = r;
    active = run.index;
    if (!how.noSync) syncOthers(run);
    if (!how.noHash) writeHash();
    redraw({ scroll: true });
  }

  function stepEvent(dir) {
    const run = runs[active];
    const d = run.disp;
    if (d.length === 0) return false;
    const i = dispPos(run, run.cursor);
    const exact = i >= 0 && shows(run, d[i], run.cursor) && (d[i] < 0 ? run.cursor === itemLast(run, d[i]) : true);
    let j;
    if (dir > 0) j = i + 1; else j = exact ? i - 1 : i;
    if (j < 0 || j >= d.length) return false;
    setCursor(run, itemLast(run, d[j]));
    return true;
  }

  function isUnit(run, r, unit) {
    const k = run.rows.k[r], fl = run.rows.fl[r];
    switch (unit) {
      case 'call': return k === K.CALL;
      case 'segment': return k === K.SEG || k === K.DROP || k === K.BAND;
      case 'ftp': return k === K.FTP && (fl & F.CMD) !== 0 && (fl & F.FTPSIDE) !== 0;
      case 'state': return run.hasState[r] === 1;
      default: return true;
    }
  }

  function stepUnit(dir) {
    const unit = $('unit').value;
    if (unit === 'event') return stepEvent(dir);
    const run = runs[active];
    for (let r = run.cursor + dir; r >= 0 && r < run.n; r += dir) {
      if (isUnit(run, r, unit) && passes(run, r)) {
        setCursor(run, r, { open: true });
        return true;
      }
    }
    return false;
  }

  function play(on) {
    if (playTimer) { clearInterval(playTimer); playTimer = null; }
    if (on) {
      const speed = Number($('speed').value) || 2;
      playTimer = setInterval(() => { if (!stepUnit(1)) play(false); }, 1000 / speed);
    }
    $('play').textContent = playTimer ? '⏸ pause' : '▶ play';
  }

  function toggleBand(run, b) {
    if (b < 0 || run.meta.bands) return;
    if (run.expanded.has(b)) run.expanded.delete(b); else run.expanded.add(b);
    buildDisplay(run);
    redraw({ scroll: true });
  }

  // Two runs side by side follow each other by the FTP dialogue, as
  // --compare's text does: the other run's cursor goes to the same step
  // (between the same two commands or replies), as far into it.
  function syncOthers(run) {
    if (runs.length < 2) return;
    const steps = (r) => [0, ...r.ftpRows, r.n];
    const a = steps(run);
    let k = 0;
    while (k + 1 < a.length - 1 && a[k + 1] <= run.cursor) k++;
    const f = a[k + 1] > a[k] ? (run.cursor - a[k]) / (a[k + 1] - a[k]) : 0;
    for (const o of runs) {
      if (o === run || o.n === 0) continue;
      const b = steps(o);
      const kk = Math.min(k, b.length - 2);
      o.cursor = Math.min(o.n - 1, b[kk] + Math.round(f * Math.max(0, b[kk + 1] - b[kk] - 1)));
    }
  }

  function writeHash() {
    const run = runs[active];
    if (!run || run.cursor < 0) return;
    let h = '#e=' + run.moment(run.cursor);
    if (runs.length > 1) h += '&run=' + active;
    if (location.hash !== h) history.replaceState(null, '', h);
  }

  function readHash() {
    const p = new URLSearchParams(location.hash.replace(/^#/, ''));
    const ri = Number(p.get('run') || 0);
    const run = runs[ri] || runs[0];
    if (!run || run.n === 0) return false;
    const e = p.get('e');
    if (e === null || e === '' || isNaN(Number(e))) return false;
    active = run.index;
    setCursor(run, run.rowAt(Number(e)), { open: true, noHash: true });
    return true;
  }

  // ---- The list, with its ladder strip ----

  class ListView {
    constructor(run, parent) {
      this.run = run;
      this.root = el('div', 'run');
      if (runs.length > 1) this.root.appendChild(el('div', 'runhead', run.meta.name || run.meta.title));
      const head = el('div', 'colhead');
      ['time ms', 'host', 'fd', 'socket'].forEach((t) => head.appendChild(el('span', '', t)));
      const names = [0, 1].map((s) => (run.meta.hosts.find((h) => h.side === s) || { name: s ? 'server' : 'client' }).name);
      const lanes = el('span', 'lanes');
      lanes.appendChild(el('span', '', names[0]));
      lanes.appendChild(el('span', 'muted', '⇄'));
      lanes.appendChild(el('span', '', names[1]));
      lanes.title = 'the ladder: ' + names[0] + "'s control and data lifelines on the left, " + names[1] + "'s on the right";
      head.appendChild(lanes);
      head.appendChild(el('span', '', 'what happened'));
      this.root.appendChild(head);
      this.scroller = el('div', 'rows');
      this.scroller.tabIndex = 0;
      this.spacer = el('div', 'spacer');
      this.scroller.appendChild(this.spacer);
      this.root.appendChild(this.scroller);
      parent.appendChild(this.root);
      this.items = new Map();
      this.scroller.addEventListener('scroll', () => this.render());
      this.scroller.addEventListener('click', (ev) => this.click(ev));
    }
    rowH() { return Math.round(22 * zoom); }
    click(ev) {
      const rowEl = ev.target.closest('.row');
      if (!rowEl) return;
      const it = Number(rowEl.dataset.item);
      const run = this.run;
      if (ev.target.closest('.tog')) {
        const b = it < 0 ? -it - 1 : run.rows.b[it];
        toggleBand(run, b);
        return;
      }
      setCursor(run, itemLast(run, it));
    }
    scrollTo(run) {
      const i = dispPos(run, run.cursor);
      if (i < 0) return;
      const h = this.rowH(), top = i * h, sc = this.scroller;
      if (top < sc.scrollTop + h || top > sc.scrollTop + sc.clientHeight - 2 * h) {
        sc.scrollTop = Math.max(0, top - sc.clientHeight / 3);
      }
    }
    render() {
      const t0 = performance.now();
      this.draw();
      // How long drawing the visible rows takes, for whoever measures
      // scrolling (BenchmarkLessonLoad).
      const took = performance.now() - t0;
      const ds = document.documentElement.dataset;
      ds.renderMaxMs = Math.max(Number(ds.renderMaxMs || 0), took).toFixed(2);
      ds.renderSumMs = (Number(ds.renderSumMs || 0) + took).toFixed(2);
      ds.renders = String(Number(ds.renders || 0) + 1);
    }
    draw() {
      const run = this.run, d = run.disp, h = this.rowH();
      this.spacer.style.height = (d.length * h) + 'px';
      const sc = this.scroller;
      const first = Math.max(0, Math.floor(sc.scrollTop / h) - 4);
      const last = Math.min(d.length, Math.ceil((sc.scrollTop + sc.clientHeight) / h) + 4);
      const want = new Set();
      for (let i = first; i < last; i++) want.add(d[i] + ':' + i);
      for (const [key, node] of this.items) {
        if (!want.has(key) || node.dataset.h !== String(h) || node.dataset.v !== String(run.version)) {
          node.remove(); this.items.delete(key);
        }
      }
      const curPos = dispPos(run, run.cursor);
      for (let i = first; i < last; i++) {
        const it = d[i], key = it + ':' + i;
        let node = this.items.get(key);
        if (!node) {
          node = this.makeRow(it, i, h);
          this.items.set(key, node);
          this.spacer.appendChild(node);
        }
        const cur = i === curPos && shows(run, it, run.cursor);
        node.classList.toggle('cur', cur);
        node.classList.toggle('future', !cfg.live && itemFirst(run, it) > run.cursor);
      }
    }
    makeRow(it, i, h) {
      const run = this.run, R = run.rows;
      const node = el('div', 'row');
      node.dataset.item = it;
      node.dataset.h = h;
      node.dataset.v = run.version;
      node.style.top = (i * h) + 'px';
      let r = it, k, x, text, fl = 0, fd, lb, host, t, tog = '';
      if (it < 0) {
        const b = -it - 1, B = run.bands;
        r = B.first[b];
        k = K.BAND; text = B.tx[b]; fd = B.fd[b]; lb = B.lb[b]; host = B.h[b]; t = B.t0[b];
        x = B.side[b] | (lb === 1 ? 1 : lb === 2 ? 2 : 0) << 2 | SHAPE.BAND << 4;
        fl = B.retrans[b] || B.drops[b] ? F.RETRANS : 0;
        tog = '▸';
        node.classList.add('band');
        node.dataset.row = B.last[b];
      } else {
        k = R.k[r]; x = R.x[r]; text = run.text(r); fl = R.fl[r]; fd = R.fd[r]; lb = R.lb[r]; host = R.h[r]; t = R.t[r];
        node.dataset.row = r;
        const b = R.b[r];
        if (b >= 0 && !run.meta.bands && run.bands.first[b] === r) tog = '▾';
        if (k === K.BAND) node.classList.add('band');
      }
      node.dataset.kind = k;
      node.appendChild(el('span', 't', ms(t)));
      node.appendChild(el('span', 'h', run.hostName(host)));
      node.appendChild(el('span', 'fd', fd > 0 ? 'fd' + fd : ''));
      node.appendChild(el('span', 'lb lb-' + (LABEL[lb] || ''), LABEL[lb] || ''));
      node.appendChild(ladderCell(x, fl, k));
      const tx = el('span', 'tx k' + k + ((fl & (F.ERROR | F.RETRANS | F.LOST)) ? ' err' : ''));
      if (tog) tx.appendChild(el('span', 'tog', tog));
      if (text === undefined) text = '…';
      tx.appendChild(document.createTextNode(text));
      tx.title = text;
      node.appendChild(tx);
      return node;
    }
  }

  // ladderCell draws a row's part of the ladder: the four lifelines and
  // the row's arrow, box or mark.
  function ladderCell(x, fl, k) {
    const s = svg('svg', { class: 'lad', viewBox: '0 0 200 22', preserveAspectRatio: 'none' });
    [[22, ''], [50, ' dl'], [150, ' dl'], [178, '']].forEach(([lx, c]) => {
      s.appendChild(svg('line', { class: 'life' + c, x1: lx, x2: lx, y1: 0, y2: 22 }));
    });
    const side = x & 3, lane = (x >> 2) & 3, shape = x >> 4;
    if (side > 1 || shape === SHAPE.NONE) return s;
    const ln = lane === 0 ? 1 : lane;
    let c = 'c' + lane;
    if (fl & F.UDP) c = 'cu';
    if (fl & (F.RETRANS | F.LOST | F.RST | F.ERROR)) c = 'ce';
    const x1 = LX[side][ln], x2 = LX[1 - side][ln], dir = x2 > x1 ? 1 : -1;
    const head = (xe, y, cls) => s.appendChild(svg('path', { class: cls, d: `M${xe},${y}l${-dir * 7},-4l0,8z` }));
    switch (shape) {
      case SHAPE.ARROW:
      case SHAPE.MSG: {
        const cls = c + (shape === SHAPE.MSG ? ' msg' : '') + ((fl & F.OTHER) ? ' dash' : '');
        s.appendChild(svg('line', { class: cls, x1, y1: 6, x2: x2 - dir * 6, y2: 15 }));
        head(x2, 15.5, c);
        break;
      }
      case SHAPE.LOST: {
        const mid = (x1 + x2) / 2;
        s.appendChild(svg('line', { class: 'ce dash', x1, y1: 6, x2: mid, y2: 11 }));
        s.appendChild(svg('path', { class: 'ce', d: `M${mid - 5},6l10,10M${mid + 5},6l-10,10`, 'stroke-width': 2 }));
        break;
      }
      case SHAPE.BAND:
        s.appendChild(svg('path', { class: c + ' band', d: `M${x1},4L${x2 - dir * 4},8L${x2},11L${x2 - dir * 4},14L${x1},18z` }));
        break;
      case SHAPE.CALL:
        s.appendChild(svg('rect', { class: 'box ' + (fl & F.ERROR ? 'ce' : c), x: x1 - 7, y: 4, width: 14, height: 14, rx: 2 }));
        break;
      case SHAPE.STATE:
        s.appendChild(svg('path', { class: 'cs', d: `M${x1},3l7,8l-7,8l-7,-8z` }));
        break;
      case SHAPE.NOTE:
        s.appendChild(svg('circle', { class: k === K.FTP ? c : 'c0', cx: x1, cy: 11, r: 4 }));
        break;
    }
    return s;
  }

  // ---- Panels ----

  function kv(pairs) {
    const dl = el('dl', 'kv');
    for (const [k, v, cls] of pairs) {
      if (v === undefined || v === null || v === '') continue;
      dl.appendChild(el('dt', '', k));
      const dd = el('dd', cls || '');
      dd.dataset.k = k;
      if (v instanceof Node) dd.appendChild(v); else dd.textContent = String(v);
      dl.appendChild(dd);
    }
    return dl;
  }
  function layer(name, cls, pairs, id) {
    const sec = el('section', 'layer l-' + cls);
    if (id) sec.id = id;
    sec.appendChild(el('h3', '', name));
    sec.appendChild(kv(pairs));
    return sec;
  }
  function flagsNode(flags) {
    const have = new Set((flags || '').split('|').filter(Boolean));
    const span = el('span');
    for (const f of ['SYN', 'ACK', 'PSH', 'FIN', 'RST', 'URG', 'ECE', 'CWR']) {
      span.appendChild(el('span', 'flag ' + (have.has(f) ? 'on' : 'off'), f));
    }
    span.dataset.flags = flags || '';
    return span;
  }

  function showLayers(run, r) {
    const box = $('layers');
    box.textContent = '';
    if (r < 0 || r >= run.n) { box.appendChild(el('div', 'empty', 'no event')); return; }
    const R = run.rows;
    const it = run.disp[dispPos(run, r)];
    const b = R.b[r];
    if ((it !== undefined && it < 0 && shows(run, it, r)) || R.k[r] === K.BAND) {
      box.appendChild(bandLayer(run, b));
      return;
    }
    const e = run.line(R.ln[r]);
    if (e === undefined) { box.appendChild(el('div', 'empty', 'reading the event…')); return; }
    if (!e) { box.appendChild(el('div', 'empty', run.text(r) || '')); return; }
    if (e.kind === 'run' && !cfg.live) {
      const hint = el('div', 'hint');
      hint.appendChild(el('strong', '', 'Step through the run: '));
      hint.appendChild(document.createTextNode('→ or "forward" moves one event, ← back; n and p move by the unit in the "by" menu (a call, a segment, an FTP command, a change of state); space plays. A click on any row goes there. The rows ahead of the cursor are grey, and the ladder grows as you go. ? lists every key.'));
      box.appendChild(hint);
    }
    const head = [['row', run.text(r)], ['event', '#' + e.seq + ' at ' + ms(R.t[r]) + ' ms'], ['recorded by', e.host || e.side || e.layer]];
    if (e.kind !== 'run') box.appendChild(layer('What happened', 'rec', head));
    if (e.segment) segmentLayers(run, r, e, box);
    if (e.kind === 'call') callLayers(run, r, e, box);
    if (e.kind === 'state' && e.state) box.appendChild(stateLayer(e.state));
    if (e.kind === 'call' && R.ln2[r] >= 0 && R.ln2[r] !== R.ln[r]) {
      // A call's beginning and end as one row: the states it made between.
      const from = R.ln[r], to = R.ln2[r];
      for (let i = from + 1; i < to; i++) {
        const s = run.line(i);
        if (s && s.kind === 'state' && s.state) box.appendChild(stateLayer(s.state));
      }
    }
    if (e.side && (e.kind === 'command' || e.kind === 'reply' || e.kind === 'data-open' || e.kind === 'data-close' || e.kind === 'tls' || e.kind === 'note')) {
      box.appendChild(layer('FTP (RFC 959)', 'ftp', [
        ['side', e.side + (e.kind === 'command' ? (e.side === 'client' ? ' sent a command' : ' received a command') : e.kind === 'reply' ? (e.side === 'client' ? ' received a reply' : ' sent a reply') : '')],
        ['connection', e.conn], ['command', e.kind === 'command' ? e.text : ''],
        ['reply', e.kind === 'reply' ? e.code + ' ' + (e.text || '').replace(/\n/g, ' / ') : ''],
        ['what', e.kind !== 'command' && e.kind !== 'reply' ? e.kind + (e.text ? ': ' + e.text : '') : ''],
        ['mode', e.mode], ['bytes', e.bytes], ['error', e.err, 'bad'], ['local', e.local], ['remote', e.remote],
      ], 'l-ftp'));
    }
    if (e.kind === 'config' && e.config) box.appendChild(layer('Configuration', 'ip', Object.entries(e.config).map(([k, v]) => [k, Array.isArray(v) ? v.join(' ') : v])));
    if (e.kind === 'host' && e.host_info) box.appendChild(layer('Host', 'eth', Object.entries(e.host_info).map(([k, v]) => [k, Array.isArray(v) ? v.join(' ') : v])));
    if (e.kind === 'run' && e.run) box.appendChild(layer('Run', 'rec', [['title', e.run.title], ['about', e.run.about]]));
    if (e.kind === 'tcp-event' && e.tcp_event) box.appendChild(layer('The kernel\'s TCP', 'err', Object.entries(e.tcp_event).map(([k, v]) => [k, Array.isArray(v) ? v.join(' → ') : v])));
  }

  function segmentLayers(run, r, e, box) {
    const s = e.segment, R = run.rows;
    if (e.drop) box.appendChild(layer('Lost on the wire', 'err', [['reason', e.drop.reason, 'bad'], ['from port', e.drop.from], ['to port', e.drop.to]]));
    const dir = s.dir === 'out' ? 'sent by ' + e.host : 'received by ' + e.host;
    if (s.ethertype) {
      const names = { 2048: 'IPv4', 34525: 'IPv6', 2054: 'ARP' };
      box.appendChild(layer('Ethernet', 'eth', [
        ['source', s.eth_src], ['destination', s.eth_dst + (s.eth_dst === 'ff:ff:ff:ff:ff:ff' ? ' (broadcast)' : '')],
        ['EtherType', '0x' + s.ethertype.toString(16).padStart(4, '0') + (names[s.ethertype] ? ' (' + names[s.ethertype] + ')' : '')],
        ['frame', s.frame + ' bytes, ' + dir],
      ], 'l-eth'));
    } else {
      box.appendChild(layer('Link', 'eth', [['frame', s.frame + ' bytes, ' + dir]], 'l-eth'));
    }
    if (s.proto === 'arp') {
      box.appendChild(layer('ARP (RFC 826)', 'arp', [['message', s.info], ['sender', s.src], ['target', s.dst]], 'l-arp'));
      return;
    }
    const addr = (a) => (a || '').replace(/:(\d+)$/, '').replace(/^\[|\]$/g, '');
    const port = (a) => { const m = /:(\d+)$/.exec(a || ''); return m ? m[1] : ''; };
    const v6 = (s.src || '').startsWith('[') || (addr(s.src).includes(':'));
    const ipPairs = [['version', v6 ? 'IPv6' : 'IPv4'], ['source', addr(s.src)], ['destination', addr(s.dst)]];
    if (s.ttl !== undefined) {
      ipPairs.push([v6 ? 'hop limit' : 'TTL', s.ttl]);
      if (!v6) {
        ipPairs.push(['identification', s.ip_id || 0]);
        ipPairs.push(['don\'t fragment', s.df ? 'yes' : 'no']);
      }
    }
    ipPairs.push(['protocol', s.proto]);
    box.appendChild(layer(v6 ? 'IPv6 (RFC 8200)' : 'IPv4 (RFC 791)', 'ip', ipPairs, 'l-ip'));
    if (s.proto === 'tcp') {
      const c = R.cn[r] >= 0 ? run.meta.conns[R.cn[r]] : null;
      let isnS = null, isnA = null, ws = -1, wsPeer = -1;
      if (c) {
        const aSide = s.src === c.a ? 0 : 1;
        isnS = c.isn[aSide]; isnA = c.isn[1 - aSide]; ws = c.ws[aSide]; wsPeer = c.ws[1 - aSide];
      }
      const rel = (v, isn) => (isn === null || isn === undefined ? '' : '  (relative ' + u32(v - isn) + ')');
      const flags = s.flags || '';
      const hasAck = flags.split('|').includes('ACK');
      let win = String(s.window || 0);
      if (!flags.includes('SYN') && ws >= 0 && wsPeer >= 0) win += ' × 2^' + ws + ' = ' + ((s.window || 0) * Math.pow(2, ws)) + ' bytes';
      const pairs = [
        ['ports', port(s.src) + ' → ' + port(s.dst)],
        ['flags', flagsNode(flags)],
        ['sequence', String(s.seq || 0) + rel(s.seq || 0, isnS)],
        ['acknowledgment', hasAck ? String(s.ack || 0) + rel(s.ack || 0, isnA) : ''],
        ['window', win],
        ['options', s.options ? s.options + (s.window_scale >= 0 ? ' (window scale ' + s.window_scale + ')' : '') : ''],
        ['SACK blocks', s.sack ? s.sack.map(([a, b]) => a + '-' + b + (isnA !== null ? ' (' + u32(a - isnA) + '-' + u32(b - isnA) + ')' : '')).join(', ') : ''],
        ['data', (s.len || 0) + ' bytes'],
        ['retransmission', (R.fl[r] & F.RETRANS) || s.retransmit ? 'yes: it carries nothing new' : 'no', (R.fl[r] & F.RETRANS) ? 'bad' : ''],
        ['socket', s.socket ? e.host + ' fd' + s.socket + (s.label ? ' ' + s.label : '') : 'none of this host\'s'],
      ];
      if (R.rt[r] >= 0) pairs.push(['received', 'at ' + ms(R.rt[r]) + ' ms by the other host']);
      box.appendChild(layer('TCP (RFC 793)', 'tcp', pairs, 'l-tcp'));
    } else if (s.proto === 'udp') {
      box.appendChild(layer('UDP (RFC 768)', 'udp', [['ports', port(s.src) + ' → ' + port(s.dst)], ['data', s.len + ' bytes'],
        ['socket', s.socket ? e.host + ' fd' + s.socket + (s.label ? ' ' + s.label : '') : '']], 'l-udp'));
      const info = s.info || '';
      if (info.startsWith('DHCP')) box.appendChild(layer('DHCP (RFC 2131)', 'dhcp', [['message', info]], 'l-dhcp'));
      else if (info.startsWith('DNS')) box.appendChild(layer('DNS (RFC 1035)', 'dns', [['message', info]], 'l-dns'));
      else if (info) box.appendChild(layer('Payload', 'udp', [['says', info]]));
    } else if (s.info) {
      box.appendChild(layer(s.proto.toUpperCase(), 'ip', [['message', s.info]]));
    }
    if (s.chain && s.chain.length) box.appendChild(layer('Made by (netstack\'s functions, outermost first)', 'call', [['call chain', s.chain.join(' → ')]]));
  }

  function callLayers(run, r, e, box) {
    const R = run.rows;
    const begin = e, end = R.ln2[r] >= 0 ? run.line(R.ln2[r]) || null : null;
    const c = Object.assign({}, begin.call, end ? end.call : {});
    const pairs = [
      ['call', run.text(r)], ['socket', 'fd' + c.socket + (c.label ? ' (' + c.label + ')' : '') + (c.proto ? ' ' + c.proto : ' tcp')],
      ['local', c.local], ['remote', c.remote], ['bytes', c.bytes], ['new socket', c.new_socket ? 'fd' + c.new_socket : ''],
      ['state before', c.state_before], ['state after', end ? c.state_after : ''], ['took', end ? dur(c.duration_ns) : 'still running at this row'],
      ['error', c.err && c.err !== 'EOF' ? c.err : '', 'bad'], ['closed', c.closed ? 'this program closed the socket while the call waited' : ''],
    ];
    box.appendChild(layer('Socket call (BSD sockets)', 'call', pairs, 'l-call'));
    box.appendChild(layer('Where it runs', 'call', [
      ['the 2005 article\'s kernel', c.article], ['Linux today', c.kernel],
      [e.layer === 'kernel' ? 'system calls' : 'netstack', c.netstack || c.syscall], ['file descriptor', c.fd],
    ]));
  }

  function stateLayer(s) {
    return layer('TCP state (RFC 793, section 3.2)', 'state', [
      ['socket', 'fd' + s.socket + (s.label ? ' ' + s.label : '')], ['change', s.from + ' → ' + s.to],
      ['cause', s.cause], ['by', s.by], ['born on', s.listener ? 'listening socket fd' + s.listener : ''],
      ['kernel functions', s.stack ? s.stack.join(' → ') : ''],
    ]);
  }

  function bandLayer(run, b) {
    const B = run.bands;
    const pairs = [
      ['band', B.tx[b]], ['segments', B.segs[b]], ['bytes', B.bytes[b]], ['from', ms(B.t0[b]) + ' ms'], ['to', ms(B.t1[b]) + ' ms'],
      ['retransmitted', B.retrans[b], B.retrans[b] ? 'bad' : ''], ['lost on the wire', B.drops[b] || '', 'bad'],
    ];
    if (run.meta.bands) pairs.push(['in this page', 'a summary: the run is long, so its bulk data is kept as bands, as nsftp\'s text view shows it (nsftp show --html --every-segment keeps every segment)']);
    else pairs.push(['open it', 'Enter, a click on ▸, or stepping by segment, shows each of its events']);
    return layer('Bulk data, as one band', 'tcp', pairs, 'l-band');
  }

  const TCBF = [
    ['state', 'state', (v) => v.state],
    ['snd_una', 'SND.UNA', (v) => rel(v.snd_una, v.iss), (v) => v.snd_una],
    ['snd_nxt', 'SND.NXT', (v) => rel(v.snd_nxt, v.iss), (v) => v.snd_nxt],
    ['snd_wnd', 'SND.WND', (v) => v.snd_wnd],
    ['rcv_nxt', 'RCV.NXT', (v) => rel(v.rcv_nxt, v.irs), (v) => v.rcv_nxt],
    ['rcv_wnd', 'RCV.WND', (v) => v.rcv_wnd],
    ['cwnd', 'cwnd (segments)', (v) => v.cwnd],
    ['ssthresh', 'ssthresh', (v) => (!v.ssthresh || Number(v.ssthresh) >= 2147483647 ? '∞' : v.ssthresh)],
    ['mss', 'MSS', (v) => v.mss],
    ['srtt_ns', 'SRTT', (v) => dur(v.srtt_ns)],
    ['rto_ns', 'RTO', (v) => dur(v.rto_ns)],
    ['congestion', 'congestion', (v) => v.congestion],
    ['outstanding', 'in flight', (v) => v.outstanding || 0],
    ['iss', 'ISS / IRS', (v) => v.iss + ' / ' + v.irs],
    // What the kernel's TCP_INFO adds (its samples only).
    ['rttvar_ns', 'RTTVAR', (v) => dur(v.rttvar_ns), null, true],
    ['sacked', 'SACKed', (v) => v.sacked, null, true],
    ['lost', 'lost', (v) => v.lost, null, true],
    ['retrans', 'retransmitted', (v) => v.retrans, null, true],
    ['total_retrans', 'retransmitted in all', (v) => v.total_retrans, null, true],
    ['delivery_rate', 'delivery rate', (v) => (v.delivery_rate ? (v.delivery_rate * 8 / 1e6).toFixed(1) + ' Mbit/s' : ''), null, true],
    ['bytes_acked', 'bytes acked', (v) => v.bytes_acked, null, true],
    ['bytes_received', 'bytes received', (v) => v.bytes_received, null, true],
    ['source', 'sampled by', (v) => v.source, null, true],
  ];
  // seqKnown says a sample has sequence number f: netstack's always do;
  // the kernel's TCP_INFO gives none, tcp_probe some (0 where it does
  // not say).
  const seqKnown = (v, f) => !v.source || (f === 'iss' ? v.iss || v.irs : v[f]);
  const SEQF = new Set(['snd_una', 'snd_nxt', 'rcv_nxt', 'iss']);
  // rel is a sequence number relative to the first, where the first is
  // known (the kernel's samples do not say it: absolute then).
  function rel(v, base) { return v === undefined ? '' : u32(v - (base || 0)); }

  function showTCB(run, r) {
    const box = $('tcb');
    box.textContent = '';
    if (r < 0) return;
    const R = run.rows, m = run.moment(r);
    let h = R.h[r], fd = R.fd[r];
    if (R.k[r] === K.BAND || (R.b[r] >= 0 && run.bands.h[R.b[r]] >= 0 && fd === 0)) { h = run.bands.h[R.b[r]]; fd = run.bands.fd[R.b[r]]; }
    if (!(fd > 0) || h < 0) { box.appendChild(el('div', 'empty', 'This row is not on a socket.')); return; }
    const socks = [[h, fd]];
    const ci = run.sockConn.get(h + ':' + fd);
    if (ci !== undefined) for (const [ph, pfd] of run.meta.conns[ci].socks || []) if (ph !== h) { socks.push([ph, pfd]); break; }
    const cols = socks.map(([sh, sfd]) => {
      const list = run.sockTCB.get(sh + ':' + sfd);
      const i = Run.lastAt(list, run.tcb.at, m);
      if (i < 0) return { sh, sfd, v: null };
      const idx = list[i];
      const ev = run.line(run.tcb.ln[idx]);
      const prev = i > 0 ? run.line(run.tcb.ln[list[i - 1]]) : null;
      if (ev === undefined || prev === undefined) return { sh, sfd, v: null, reading: true };
      return { sh, sfd, v: ev && ev.tcb, prev: prev && prev.tcb, at: run.tcb.at[idx], fresh: run.tcb.at[idx] > run.before(r) };
    });
    if (cols.some((c) => c.reading)) { box.appendChild(el('div', 'empty', 'reading the TCB…')); return; }
    if (cols.every((c) => !c.v)) {
      box.appendChild(el('div', 'empty', 'No TCB sample for ' + run.sockName(h, fd) + ' yet: netstack reports one after it processes a segment of a connection (a listening or UDP socket has none).'));
      return;
    }
    const t = el('table', 'tcb');
    t.id = 'tcbtable';
    const hr = el('tr');
    hr.appendChild(el('th', '', ''));
    cols.forEach((c) => {
      const th = el('th', '', run.sockName(c.sh, c.sfd));
      th.dataset.sock = c.sh + ':' + c.sfd;
      hr.appendChild(th);
    });
    t.appendChild(hr);
    for (const [f, name, show, abs, optional] of TCBF) {
      if (optional && !cols.some((c) => c.v && c.v[f] !== undefined && c.v[f] !== '' && c.v[f] !== 0)) continue;
      const tr = el('tr');
      tr.appendChild(el('td', '', name));
      for (const c of cols) {
        const td = el('td');
        td.dataset.f = f;
        td.dataset.sock = c.sh + ':' + c.sfd;
        if (c.v && SEQF.has(f) && !seqKnown(c.v, f)) {
          td.textContent = '—';
          td.title = 'the kernel\'s sample does not say it';
        } else if (c.v) {
          td.textContent = show(c.v);
          td.dataset.v = c.v[f] === undefined ? '' : String(c.v[f]);
          if (abs) td.appendChild(el('span', 'abs', abs(c.v)));
          if (c.fresh && (!c.prev || JSON.stringify(c.prev[f]) !== JSON.stringify(c.v[f]))) td.classList.add('chg');
        } else td.textContent = '—';
        tr.appendChild(td);
      }
      t.appendChild(tr);
    }
    box.appendChild(t);
    const notes = cols.filter((c) => c.v).map((c) => run.sockName(c.sh, c.sfd) + ': sample #' + c.at + (c.fresh ? ', new in this step (what changed is marked)' : ''));
    box.appendChild(el('div', 'tcbnote', 'Sequence numbers relative to ISS and IRS (absolute in grey). ' + notes.join('; ') + '.'));
  }

  // nodeFor is the state diagram's node for a state: CLOSED is drawn
  // twice, as in RFC 793's figure, where connections start and where
  // they end.
  function nodeFor(state, from) {
    if (state === 'CLOSED' && from && !['INITIAL', 'BOUND', 'LISTEN', 'SYN-SENT', 'CLOSED'].includes(from)) return 'CLOSED-end';
    return state;
  }

  function showStates(run, r) {
    const m = run.moment(r), prev = run.before(r);
    const svgEl = $('statesvg');
    if (!svgEl) return;
    svgEl.querySelectorAll('.sdnode').forEach((n) => { n.classList.remove('occupied', 'focus'); n.querySelector('.chips').textContent = ''; });
    svgEl.querySelectorAll('.sdedge').forEach((n) => n.classList.remove('lit', 'last'));
    const extra = $('sdextra');
    extra.style.display = 'none';
    const names = run.meta.stateNames;
    const R = run.rows;
    let fh = R.h[r], ffd = R.fd[r];
    if (R.k[r] === K.BAND || (R.b[r] >= 0 && !(ffd > 0))) { fh = run.bands.h[R.b[r]]; ffd = run.bands.fd[R.b[r]]; }
    const chips = new Map();
    for (const [key, list] of run.sockStates) {
      const i = Run.lastAt(list, run.st.at, m);
      if (i < 0) continue;
      const si = list[i];
      const state = names[run.st.to[si]];
      if (state === 'CLOSED' && run.st.at[si] <= prev) continue; // closed before this step
      const [h, fd] = key.split(':').map(Number);
      const node = nodeFor(state, names[run.st.from_[si]]);
      if (!chips.has(node)) chips.set(node, []);
      chips.get(node).push({ h, fd, focus: h === fh && fd === ffd });
    }
    for (const [id, list] of chips) {
      const node = document.getElementById('st-' + id);
      if (!node) continue;
      node.classList.add('occupied');
      const x = Number(node.dataset.x), y = Number(node.dataset.y);
      const right = x > 450; // the right column's names go on its left
      const g = node.querySelector('.chips');
      list.sort((a, b) => (b.focus - a.focus) || a.h - b.h || a.fd - b.fd);
      const shown = list.slice(0, 3);
      if (list.length > 3) shown.push(null);
      shown.forEach((c, j) => {
        const t = svg('text', { x: right ? x - 66 : x + 66, y: y - 5 + j * 11, 'text-anchor': right ? 'end' : 'start', class: c && c.focus ? 'focus' : '' });
        if (c) {
          if (c.focus) node.classList.add('focus');
          t.textContent = run.sockName(c.h, c.fd);
          t.dataset.sock = c.h + ':' + c.fd;
        } else t.textContent = '+' + (list.length - 3) + ' more';
        g.appendChild(t);
      });
    }
    // The transitions this step took; or the cursor's socket's last.
    const cap = $('transition');
    cap.textContent = '';
    const took = [];
    for (let i = 0; i < run.st.at.length; i++) {
      const at = run.st.at[i];
      if (at > m) break;
      if (at > prev) took.push(i);
    }
    let mark = 'lit';
    if (took.length === 0 && ffd > 0) {
      const list = run.sockStates.get(fh + ':' + ffd);
      const i = Run.lastAt(list, run.st.at, m);
      if (i >= 0) { took.push(list[i]); mark = 'last'; }
    }
    for (const i of took.slice(-4)) {
      const from = names[run.st.from_[i]], to = names[run.st.to[i]];
      const edge = document.getElementById('tr-' + from + '--' + to);
      if (edge) edge.classList.add(mark);
      else if (mark === 'lit') {
        const a = document.getElementById('st-' + from), b = document.getElementById('st-' + nodeFor(to, from));
        if (a && b) {
          extra.style.display = '';
          extra.querySelector('path').setAttribute('d', `M${a.dataset.x},${a.dataset.y}L${b.dataset.x},${b.dataset.y}`);
        }
      }
      const line = el('div');
      line.appendChild(el('span', mark === 'lit' ? 'tr' : 'muted', (mark === 'lit' ? 'now: ' : 'last: ') + run.sockName(run.st.h[i], run.st.fd[i]) + ' ' + from + ' → ' + to));
      line.appendChild(document.createTextNode('  ' + run.st.cause[i]));
      cap.appendChild(line);
    }
  }

  function showGraph(run, r) {
    const sec = $('p-graph');
    const g = run.graph;
    if (!g || !g.svg) { sec.hidden = true; return; }
    sec.hidden = false;
    const host = $('graph');
    if (host.dataset.run !== String(run.index)) {
      const root = host.shadowRoot || host.attachShadow({ mode: 'open' });
      root.innerHTML = '<style>svg{width:100%;height:auto;display:block}</style>' + g.svg;
      host.dataset.run = run.index;
      const s = root.querySelector('svg');
      run.graphCursors = (g.panels || []).map((p) => {
        const line = document.createElementNS(SVGNS, 'line');
        line.setAttribute('y1', p.top); line.setAttribute('y2', p.bottom);
        line.setAttribute('stroke', '#CC79A7'); line.setAttribute('stroke-width', '2.5');
        line.setAttribute('class', 'nsftp-cursor');
        s.appendChild(line);
        return { p, line };
      });
    }
    const R = run.rows;
    let t = R.t[r];
    if (R.b[r] >= 0 && !run.meta.bands && !run.expanded.has(R.b[r])) t = run.bands.t1[R.b[r]];
    if (R.k[r] === K.BAND) t = run.bands.t1[R.b[r]];
    for (const { p, line } of run.graphCursors || []) {
      const span = Math.max(1, p.t1 - p.t0);
      const f = Math.max(0, Math.min(1, (t - p.t0) / span));
      const x = p.x0 + f * (p.x1 - p.x0);
      line.setAttribute('x1', x); line.setAttribute('x2', x);
      line.setAttribute('stroke-opacity', t < p.t0 || t > p.t1 ? '0.35' : '1');
    }
  }

  // ---- Drawing everything ----

  function redraw(how) {
    views.forEach((v) => {
      v.root.classList.toggle('inactive', runs.length > 1 && v.run.index !== active);
      if (how && how.scroll) {
        v.render(); // the spacer's height first, or the scroll is cut short
        v.scrollTo(v.run);
      }
      v.render();
    });
    redrawPanels();
  }

  function redrawPanels() {
    const run = runs[active];
    if (!run || run.n === 0 || run.cursor < 0) return;
    const r = run.cursor;
    showLayers(run, r);
    showTCB(run, r);
    showStates(run, r);
    showGraph(run, r);
    const i = dispPos(run, r);
    $('pos').textContent = (i + 1) + ' / ' + run.disp.length + '  ·  event #' + run.moment(r) + '  ·  ' + ms(run.rows.t[r]) + ' ms';
    document.documentElement.dataset.cursor = run.moment(r);
  }

  function fillFilters() {
    const run = runs[active];
    const fh = $('fhost'), fs = $('fsock');
    const keep = [fh.value, fs.value];
    fh.length = 1; fs.length = 1;
    run.meta.hosts.forEach((h, i) => { const o = el('option', '', h.name); o.value = String(i); fh.appendChild(o); });
    run.sockets.forEach((s) => { const o = el('option', '', run.sockName(s.h, s.fd)); o.value = s.key; fs.appendChild(o); });
    fh.value = keep[0]; fs.value = keep[1];
    if (fh.value !== keep[0]) fh.value = '';
    if (fs.value !== keep[1]) fs.value = '';
  }

  // stack puts the list above the panels when the window, at the zoom,
  // is too narrow for both side by side.
  function stack() {
    document.body.classList.toggle('stacked', window.innerWidth / zoom < 1150);
  }

  function setZoom(z) {
    zoom = z;
    stack();
    document.documentElement.style.setProperty('--zoom', z);
    document.documentElement.style.setProperty('--rowh', Math.round(22 * z) + 'px');
    redraw({ scroll: true });
  }

  function setTheme(t) {
    document.documentElement.dataset.theme = t;
    $('themename').textContent = t === 'dark' ? 'light' : 'dark';
    $('graph').classList.toggle('dark', t === 'dark');
    try { localStorage.setItem('nsftp-theme', t); } catch (e) { /* a file:// page may have no storage */ }
  }

  function wire() {
    $('first').onclick = () => setCursor(runs[active], 0);
    $('last').onclick = () => setCursor(runs[active], runs[active].n - 1);
    $('prev').onclick = () => stepEvent(-1);
    $('next').onclick = () => stepEvent(1);
    $('punit').onclick = () => stepUnit(-1);
    $('nunit').onclick = () => stepUnit(1);
    $('play').onclick = () => play(!playTimer);
    $('speed').onchange = () => { if (playTimer) play(true); };
    $('zoomin').onclick = () => setZoom(ZOOMS[Math.min(ZOOMS.length - 1, ZOOMS.indexOf(zoom) + 1)]);
    $('zoomout').onclick = () => setZoom(ZOOMS[Math.max(0, ZOOMS.indexOf(zoom) - 1)]);
    $('theme').onclick = () => setTheme(document.documentElement.dataset.theme === 'dark' ? 'light' : 'dark');
    $('helpbtn').onclick = () => { $('help').hidden = false; };
    $('helpclose').onclick = () => { $('help').hidden = true; };
    const refilter = () => {
      filter.host = $('fhost').value;
      filter.sock = $('fsock').value;
      filter.kinds = new Set([...document.querySelectorAll('#fkinds input:checked')].map((i) => i.value));
      runs.forEach(buildDisplay);
      redraw({ scroll: true });
    };
    $('openbands').onchange = () => {
      const open = $('openbands').checked;
      for (const run of runs) {
        run.expanded.clear();
        if (open && !run.meta.bands) for (let b = 0; b < run.bands.first.length; b++) run.expanded.add(b);
        buildDisplay(run);
      }
      redraw({ scroll: true });
    };
    $('fhost').onchange = refilter;
    $('fsock').onchange = refilter;
    document.querySelectorAll('#fkinds input').forEach((i) => { i.onchange = refilter; });
    window.addEventListener('hashchange', () => readHash());
    window.addEventListener('resize', () => { stack(); redraw(); });
    document.addEventListener('keydown', (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      const tag = ev.target && ev.target.tagName;
      if (tag === 'SELECT' || tag === 'INPUT' || tag === 'TEXTAREA') return;
      const run = runs[active];
      let done = true;
      switch (ev.key) {
        case 'ArrowRight': case 'ArrowDown': stepEvent(1); break;
        case 'ArrowLeft': case 'ArrowUp': stepEvent(-1); break;
        case 'n': stepUnit(1); break;
        case 'p': stepUnit(-1); break;
        case ' ': play(!playTimer); break;
        case 'Home': setCursor(run, 0); break;
        case 'End': setCursor(run, run.n - 1); break;
        case 'Enter': toggleBand(run, run.rows.b[run.cursor]); break;
        case 'b': $('openbands').click(); break;
        case '+': case '=': $('zoomin').click(); break;
        case '-': $('zoomout').click(); break;
        case 't': $('theme').click(); break;
        case '?': $('help').hidden = !$('help').hidden; break;
        case 'Escape': $('help').hidden = true; break;
        default: done = false;
      }
      if (done) ev.preventDefault();
    });
  }

  function setup() {
    const lists = $('lists');
    lists.textContent = '';
    views.length = 0;
    runs.forEach((run) => { buildDisplay(run); views.push(new ListView(run, lists)); });
    const run = runs[0];
    $('title').textContent = run.meta.title || 'nsftp: a run';
    document.title = (run.meta.title || 'nsftp') + ' — lesson';
    $('about').textContent = runs.length > 1 ? runs.map((r) => r.meta.name || r.meta.title).join('  |  ') : (run.meta.about || '');
    fillFilters();
  }

  // ---- Loading: a file's runs, or a live run ----

  function fromBase64(s) {
    if (Uint8Array.fromBase64) return Uint8Array.fromBase64(s);
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  }

  async function gunzip(bytes) {
    const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream('gzip'));
    return new Uint8Array(await new Response(stream).arrayBuffer());
  }

  // phases are how long loading took, step by step, for whoever measures.
  const phases = {};
  const phase = (name, t) => { phases[name] = (phases[name] || 0) + Math.round(performance.now() - t); return performance.now(); };

  async function loadFile() {
    const blobs = [...document.querySelectorAll('script.runblob')];
    for (const [i, b] of blobs.entries()) {
      let t = performance.now();
      const parts = b.textContent.trim().split('\n');
      const packed = fromBase64(parts[0]);
      t = phase('base64', t);
      const bytes = await gunzip(packed);
      t = phase('gunzip', t);
      // The model's JSON, then its rows' columns, binary.
      const nl = bytes.indexOf(10);
      const d = JSON.parse(new TextDecoder().decode(bytes.subarray(0, nl)));
      const fr = d.rows, rows = { from: 0 };
      let off = nl + 1;
      while (off % 8) off++;
      for (const [name, type] of fr.order) {
        // i32 and f64 as they are; d32 the difference from the row
        // before; r32 from the column t (-1: none).
        if (type === 'f64') {
          rows[name] = new Float64Array(bytes.buffer, bytes.byteOffset + off, fr.n);
          off += 8 * fr.n;
        } else {
          const v = new Int32Array(bytes.buffer, bytes.byteOffset + off, fr.n);
          off += 4 * fr.n;
          if (type === 'd32') {
            const out = new Float64Array(fr.n);
            let acc = 0;
            for (let i = 0; i < fr.n; i++) { acc += v[i]; out[i] = acc; }
            rows[name] = out;
          } else if (type === 'r32') {
            const out = new Float64Array(fr.n), base = rows.t;
            for (let i = 0; i < fr.n; i++) out[i] = v[i] < 0 ? -1 : base[i] + v[i];
            rows[name] = out;
          } else rows[name] = v;
        }
        while (off % 8) off++;
      }
      d.rows = rows;
      t = phase('model', t);
      const run = new Run(i);
      run.version = 0;
      run.apply(d);
      t = phase('index', t);
      run.setTexts(parts.slice(1, 1 + fr.texts), fr.textChunk);
      run.setChunks(parts.slice(1 + fr.texts), Number(b.dataset.chunk) || 2048);
      runs.push(run);
      b.textContent = ''; // the page keeps its own copy only
    }
  }

  function startLive() {
    const run = new Run(0);
    run.version = 0;
    runs.push(run);
    const token = new URLSearchParams(location.search).get('token') || '';
    const bar = $('live');
    bar.hidden = false;
    const status = $('lstatus');
    const buttons = ['lcall', 'lseg', 'lcont', 'lstop'].map($);
    const send = (what) => {
      buttons.forEach((b) => { b.disabled = true; });
      fetch('control', { method: 'POST', headers: { 'X-Nsftp-Token': token }, body: what })
        .then((res) => { if (!res.ok) status.textContent = 'refused: ' + res.status + (res.status === 403 ? ' (control needs the token in the address nsftp printed)' : ''); })
        .catch(() => { status.textContent = 'the run has ended'; });
    };
    $('lcall').onclick = () => send('next-call');
    $('lseg').onclick = () => send('next-segment');
    $('lcont').onclick = () => send('continue');
    $('lstop').onclick = () => send('stop');
    if (!token) { buttons.forEach((b) => { b.disabled = true; }); status.textContent = 'watching: control needs the token in the address nsftp printed'; }
    let first = true;
    const es = new EventSource('events');
    es.addEventListener('model', (ev) => {
      const atEnd = run.cursor >= run.n - 1;
      run.apply(parseEvent(ev.data));
      run.version++;
      if (first) { setup(); first = false; }
      buildDisplay(run);
      fillFilters();
      if (atEnd) { setCursor(run, run.n - 1, { noHash: false }); } else redraw();
    });
    es.addEventListener('status', (ev) => {
      const s = JSON.parse(ev.data);
      status.textContent = s.text || '';
      const paused = !!s.paused && !!token && !s.done;
      buttons.forEach((b) => { b.disabled = !paused; });
      if (s.done) { es.close(); document.documentElement.dataset.done = '1'; }
    });
    es.onerror = () => {
      if (document.documentElement.dataset.done !== '1') status.textContent = 'disconnected from nsftp';
    };
    wire();
  }

  async function main() {
    let theme = null;
    try { theme = localStorage.getItem('nsftp-theme'); } catch (e) { /* no storage */ }
    if (!theme) theme = window.matchMedia && window.matchMedia('(prefers-color-scheme: dark)').matches ? 'dark' : 'light';
    setTheme(theme);
    setZoom(1);
    if (cfg.live) { startLive(); return; }
    const t0 = performance.now();
    await loadFile();
    if (runs.length === 0 || runs.every((r) => r.n === 0)) {
      $('lists').appendChild(el('div', 'empty', 'This page holds no events.'));
      return;
    }
    let t = performance.now();
    setup();
    t = phase('display', t);
    wire();
    if (!readHash()) setCursor(runs[0], 0, { noHash: true });
    phase('draw', t);
    document.documentElement.dataset.phases = JSON.stringify(phases);
    const took = performance.now() - t0;
    document.documentElement.dataset.loadMs = took.toFixed(0);
    document.documentElement.dataset.readyMs = performance.now().toFixed(0);
    const ev = runs.reduce((a, r) => a + (r.meta.events || 0), 0);
    $('loadinfo').textContent = ev.toLocaleString('en') + ' events';
  }

  main().catch((e) => {
    const d = el('div', 'empty', 'The page could not read its run: ' + e);
    $('lists').appendChild(d);
    throw e;
  });
})();
