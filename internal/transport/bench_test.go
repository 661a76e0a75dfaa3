package transport

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"slices"
	"sync"
	"testing"
	"time"
)

func benchCall(b *testing.B, size int) { benchCallConfig(b, size, Config{}, Config{}) }

func benchCallConfig(b *testing.B, size int, scfg, ccfg Config) {
	s := startServer(b, scfg)
	c := newClient(b, ccfg)
	ctx := context.Background()
	req := Message{Type: msgEcho, Header: make([]byte, 32), Body: make([]byte, size)}
	if _, err := c.Call(ctx, s.addr, req); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(size))
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := c.Call(ctx, s.addr, req); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkCall: 256-byte bodies echoed by concurrent callers (32 per
// GOMAXPROCS by default, like the product's 32 concurrent callers on 2 cores).
func BenchmarkCall(b *testing.B) {
	b.SetParallelism(16)
	benchCall(b, 256)
}

// BenchmarkCall1MiB: 1 MiB bodies echoed (SetBytes counts one direction).
func BenchmarkCall1MiB(b *testing.B) {
	b.SetParallelism(2)
	benchCall(b, 1<<20)
}

func BenchmarkFrameEncode(b *testing.B) {
	f := Frame{Kind: KindRequest, Type: 10, ID: 12345, Header: make([]byte, 32), Body: make([]byte, 256)}
	buf := make([]byte, 0, 1024)
	b.SetBytes(int64(PrefixSize + 32 + 256))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendFrame(buf[:0], f)
	}
}

func BenchmarkFrameDecode(b *testing.B) {
	f := Frame{Kind: KindRequest, Type: 10, ID: 12345, Header: make([]byte, 32), Body: make([]byte, 256)}
	var stream []byte
	for range 1000 {
		stream = AppendFrame(stream, f)
	}
	rd := bytes.NewReader(stream)
	br := bufio.NewReaderSize(rd, readBufferSize)
	b.SetBytes(int64(PrefixSize + 32 + 256))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ReadFrame(br, DefaultMaxFrameSize); err != nil {
			if err != io.EOF {
				b.Fatal(err)
			}
			rd.Reset(stream)
			br.Reset(rd)
		}
	}
}

// BenchmarkCallSerial: one caller at a time (latency of a lone call).
func BenchmarkCallSerial(b *testing.B) {
	s := startServer(b, Config{})
	c := newClient(b, Config{})
	ctx := context.Background()
	req := Message{Type: msgEcho, Header: make([]byte, 32), Body: make([]byte, 256)}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.Call(ctx, s.addr, req); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCallBehindLarge: latency of lone 256-byte calls while two other
// callers keep sending 16 MiB requests (answered with an empty response, like
// puts) to the same server. Reports the mean (ns/op) and the 99th percentile.
func BenchmarkCallBehindLarge(b *testing.B) {
	s := startServer(b, Config{})
	s.Handle(msgSink, sink)
	c := newClient(b, Config{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	big := Message{Type: msgSink, Body: make([]byte, 16<<20)}
	var wg sync.WaitGroup
	defer wg.Wait()
	defer cancel()
	for range 2 {
		wg.Go(func() {
			for ctx.Err() == nil {
				if _, err := c.Call(ctx, s.addr, big); err != nil && ctx.Err() == nil {
					b.Error(err)
					return
				}
			}
		})
	}
	req := Message{Type: msgEcho, Header: make([]byte, 32), Body: make([]byte, 256)}
	var lat []time.Duration
	b.ReportAllocs()
	for b.Loop() {
		t := time.Now()
		if _, err := c.Call(ctx, s.addr, req); err != nil {
			b.Fatal(err)
		}
		lat = append(lat, time.Since(t))
	}
	slices.Sort(lat)
	b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds()), "p99-ns")
}
