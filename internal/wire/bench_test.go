package wire

import (
	"bytes"
	"io"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"
)

// The relay's hot path forwards server results to clients. These benchmarks
// keep the ways of doing it side by side on the same stream: a pgbench-like
// result (RowDescription, rows, CommandComplete, ReadyForQuery) repeated.
// The writer counts writes, each of which is a syscall on a real socket.

func resultStream(rows, repeat int) []byte {
	var one []byte
	one = Append(one, &pgproto3.RowDescription{Fields: []pgproto3.FieldDescription{{Name: []byte("abalance"), DataTypeOID: 23, DataTypeSize: 4, TypeModifier: -1}}})
	for i := range rows {
		one = Append(one, &pgproto3.DataRow{Values: [][]byte{[]byte{byte('0' + i%10), '4', '2'}}})
	}
	one = Append(one, &pgproto3.CommandComplete{CommandTag: []byte("SELECT 1")})
	one = Append(one, &pgproto3.ReadyForQuery{TxStatus: 'I'})
	return bytes.Repeat(one, repeat)
}

type countWriter struct{ writes, bytes int }

func (w *countWriter) Write(p []byte) (int, error) {
	w.writes++
	w.bytes += len(p)
	return len(p), nil
}

// chunked hands out the stream in socket-sized reads.
type chunked struct {
	data []byte
	off  int
	size int
}

func (c *chunked) Read(p []byte) (int, error) {
	if c.off >= len(c.data) {
		return 0, io.EOF
	}
	n := min(len(p), c.size, len(c.data)-c.off)
	copy(p, c.data[c.off:c.off+n])
	c.off += n
	return n, nil
}

func benchStreams(b *testing.B, name string, relay func(src io.Reader, dst io.Writer) int) {
	for _, tc := range []struct {
		name         string
		rows, repeat int
	}{
		{"select-1row", 1, 200},
		{"select-100rows", 100, 10},
	} {
		stream := resultStream(tc.rows, tc.repeat)
		b.Run(name+"/"+tc.name, func(b *testing.B) {
			b.SetBytes(int64(len(stream)))
			b.ReportAllocs()
			var w countWriter
			src := &chunked{data: stream, size: 16 << 10}
			for b.Loop() {
				src.off = 0
				w = countWriter{}
				relay(src, &w)
			}
			b.ReportMetric(float64(w.writes), "writes/op")
		})
	}
}

// BenchmarkRelay compares forwarding strategies.
func BenchmarkRelay(b *testing.B) {
	// framed-spans: what pgvalve does — frame by hand, note Z, write every
	// complete message buffered in one Write.
	rd := NewReader(nil, DefaultBufferSize, 1<<30)
	benchStreams(b, "framed-spans", func(src io.Reader, dst io.Writer) int {
		rd.Reset(src)
		ready := 0
		for {
			for {
				f, ok, _ := rd.Next()
				if !ok {
					break
				}
				if f.Type == 'Z' {
					ready++
				}
			}
			if span := rd.Take(); len(span) > 0 {
				_, _ = dst.Write(span)
			}
			if rd.Fill() != nil {
				return ready
			}
		}
	})
	// framed-per-message: same framing, one Write per message.
	rd2 := NewReader(nil, DefaultBufferSize, 1<<30)
	benchStreams(b, "framed-per-message", func(src io.Reader, dst io.Writer) int {
		rd2.Reset(src)
		ready := 0
		for {
			for {
				f, ok, _ := rd2.Next()
				if !ok {
					break
				}
				if f.Type == 'Z' {
					ready++
				}
				_, _ = dst.Write(rd2.Take())
			}
			if rd2.Fill() != nil {
				return ready
			}
		}
	})
	// pgproto3-decode-encode: decode every message with pgproto3's
	// Frontend and re-encode it into a reused buffer, flushed per batch.
	benchStreams(b, "pgproto3-decode-encode", func(src io.Reader, dst io.Writer) int {
		fe := pgproto3.NewFrontend(src, io.Discard)
		buf := make([]byte, 0, DefaultBufferSize)
		ready := 0
		for {
			msg, err := fe.Receive()
			if err != nil {
				return ready
			}
			if _, ok := msg.(*pgproto3.ReadyForQuery); ok {
				ready++
			}
			buf, _ = msg.Encode(buf)
			if len(buf) >= DefaultBufferSize/2 || fe.ReadBufferLen() == 0 {
				_, _ = dst.Write(buf)
				buf = buf[:0]
			}
		}
	})
	// io-copy: no framing at all, the lower bound (pgvalve cannot use it: it
	// must see ReadyForQuery to know when a server can go back).
	copyBuf := make([]byte, DefaultBufferSize)
	benchStreams(b, "io-copy", func(src io.Reader, dst io.Writer) int {
		_, _ = io.CopyBuffer(dst, src, copyBuf)
		return 0
	})
}
