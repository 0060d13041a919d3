package trace_test

import (
	"bytes"
	"compress/gzip"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/nsftp/nsftp/trace"
)

// TestReadJSONGzip reads a recording compressed with gzip (RUN.jsonl.gz)
// as the recording itself: known by its first bytes, whatever its name.
func TestReadJSONGzip(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join("testdata", "demo-active.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var z bytes.Buffer
	zw := gzip.NewWriter(&z)
	zw.Write(raw)
	zw.Close()
	plain, err := trace.ReadJSON(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	unzipped, err := trace.ReadJSON(&z)
	if err != nil {
		t.Fatal(err)
	}
	if len(plain) < 100 || !reflect.DeepEqual(plain, unzipped) {
		t.Fatalf("the gzip recording read %d events, the plain one %d, or they differ", len(unzipped), len(plain))
	}
	// A gzip stream cut short is an error, not a shorter run.
	var z2 bytes.Buffer
	zw2 := gzip.NewWriter(&z2)
	zw2.Write(raw)
	zw2.Close()
	if _, err := trace.ReadJSON(bytes.NewReader(z2.Bytes()[:z2.Len()/2])); err == nil {
		t.Error("a gzip recording cut in half read without an error")
	}
	if _, err := trace.ReadJSON(strings.NewReader("\x1f\x8bnot gzip at all")); err == nil {
		t.Error("bytes that start like gzip and are not read without an error")
	}
}
