package hbase

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
)

// fakeHBase is a TCP server speaking HBase's framing, answering each method through answer:
// a message, an exception class, or raw bytes for the whole frame body (or, when they start
// with a zero byte, for the message after a correct header). It plays the master,
// the registry and the only region server: hbase:meta is on itself.
type fakeHBase struct {
	ln     net.Listener
	answer func(method string, param []byte) (msg proto.Message, exception string, raw []byte)
	wg     sync.WaitGroup
	mu     sync.Mutex
	conns  []net.Conn
}

func newFakeHBase(t *testing.T, answer func(method string, param []byte) (proto.Message, string, []byte)) *fakeHBase {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeHBase{ln: ln, answer: answer}
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			f.mu.Lock()
			f.conns = append(f.conns, c)
			f.mu.Unlock()
			f.wg.Add(1)
			go f.serve(c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		f.mu.Lock()
		for _, c := range f.conns {
			c.Close()
		}
		f.mu.Unlock()
		f.wg.Wait()
	})
	return f
}

func (f *fakeHBase) addr() string { return f.ln.Addr().String() }

func readDelimited(b []byte) ([]byte, []byte) {
	n, k := protowire.ConsumeVarint(b)
	if k < 0 || n > uint64(len(b)-k) {
		return nil, nil
	}
	return b[k : k+int(n)], b[k+int(n):]
}

func (f *fakeHBase) serve(c net.Conn) {
	defer f.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	var pre [6]byte
	var lb [4]byte
	if _, err := io.ReadFull(br, pre[:]); err != nil {
		return
	}
	if _, err := io.ReadFull(br, lb[:]); err != nil {
		return
	}
	if _, err := io.ReadFull(br, make([]byte, binary.BigEndian.Uint32(lb[:]))); err != nil {
		return
	}
	for {
		if _, err := io.ReadFull(br, lb[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(lb[:]))
		if _, err := io.ReadFull(br, frame); err != nil {
			return
		}
		hb, rest := readDelimited(frame)
		h := &pb.RequestHeader{}
		if proto.Unmarshal(hb, h) != nil {
			return
		}
		param, _ := readDelimited(rest)
		msg, exception, raw := f.answer(h.GetMethodName(), param)
		var body []byte
		switch {
		case len(raw) > 0 && raw[0] == 0:
			// A correct header for the call, then raw[1:] as the message bytes.
			rh, _ := proto.Marshal(&pb.ResponseHeader{CallId: h.CallId})
			body = protowire.AppendVarint(nil, uint64(len(rh)))
			body = append(body, rh...)
			body = protowire.AppendVarint(body, uint64(len(raw)-1))
			body = append(body, raw[1:]...)
		case raw != nil:
			body = raw
		case exception != "":
			rh, _ := proto.Marshal(&pb.ResponseHeader{CallId: h.CallId, Exception: &pb.ExceptionResponse{ExceptionClassName: proto.String(exception), StackTrace: proto.String(exception + ": fake")}})
			body = protowire.AppendVarint(nil, uint64(len(rh)))
			body = append(body, rh...)
		default:
			rh, _ := proto.Marshal(&pb.ResponseHeader{CallId: h.CallId})
			body = protowire.AppendVarint(nil, uint64(len(rh)))
			body = append(body, rh...)
			mb, _ := proto.MarshalOptions{AllowPartial: true}.Marshal(msg)
			body = protowire.AppendVarint(body, uint64(len(mb)))
			body = append(body, mb...)
		}
		c.Write(binary.BigEndian.AppendUint32(nil, uint32(len(body))))
		c.Write(body)
	}
}

// metaAnswers answers the registry and hbase:meta lookups: one region of table "t" covering
// everything, served by the fake itself.
func metaAnswers(self string, method string) (proto.Message, bool) {
	host, port, _ := net.SplitHostPort(self)
	p, _ := strconv.Atoi(port)
	switch method {
	case "GetMetaRegionLocations":
		return &pb.GetMetaRegionLocationsResponse{MetaLocations: []*pb.RegionLocation{{
			RegionInfo: &pb.RegionInfo{RegionId: proto.Uint64(1), TableName: tableName(metaTable), RegionEncodedName: proto.String("1588230740")},
			ServerName: &pb.ServerName{HostName: proto.String(host), Port: proto.Uint32(uint32(p))},
			SeqNum:     proto.Int64(1),
		}}}, true
	case "Scan-meta":
		ri, _ := proto.Marshal(&pb.RegionInfo{RegionId: proto.Uint64(2), TableName: tableName("t"), RegionEncodedName: proto.String("abc")})
		return &pb.ScanResponse{Results: []*pb.Result{metaResult("t,,2.abc.", append([]byte("PBUF"), ri...), self, "OPEN")}, MoreResults: proto.Bool(false)}, true
	}
	return nil, false
}

func isMetaScan(param []byte) bool {
	req := &pb.ScanRequest{}
	return proto.Unmarshal(param, req) == nil && string(req.GetRegion().GetValue()) == "hbase:meta,,1"
}

// TestMalformedAnswers: a server answering nonsense gets a clear error, never a panic or a hang.
func TestMalformedAnswers(t *testing.T) {
	garbage := []byte{0xff, 0xff, 0xff}
	cases := []struct {
		name string
		// answer for the method under test (meta lookups are answered correctly unless the
		// case overrides them)
		answer func(method string, param []byte) (proto.Message, string, []byte, bool)
		op     func(ctx context.Context, c *Client) error
		want   error
	}{
		{"registry answers garbage", func(method string, _ []byte) (proto.Message, string, []byte, bool) {
			if method == "GetMetaRegionLocations" {
				return &pb.GetMetaRegionLocationsResponse{MetaLocations: []*pb.RegionLocation{{}}}, "", nil, true
			}
			return nil, "", nil, false
		}, getOp, ErrMalformed},
		{"meta row without PBUF", func(method string, param []byte) (proto.Message, string, []byte, bool) {
			if method == "Scan" && isMetaScan(param) {
				return &pb.ScanResponse{Results: []*pb.Result{metaResult("t,,2.abc.", []byte("junk"), "h:1", "")}}, "", nil, true
			}
			return nil, "", nil, false
		}, getOp, ErrMalformed},
		{"truncated GetResponse", func(method string, _ []byte) (proto.Message, string, []byte, bool) {
			if method == "Get" {
				return nil, "", []byte{0, 0x0a, 0x05, 0x01}, true // a Result claiming 5 bytes, 1 present
			}
			return nil, "", nil, false
		}, getOp, ErrMalformed},
		{"multi with no region results", func(method string, _ []byte) (proto.Message, string, []byte, bool) {
			if method == "Multi" {
				return &pb.MultiResponse{}, "", nil, true
			}
			return nil, "", nil, false
		}, multiOp, ErrMalformed},
		{"multi result index out of range", func(method string, _ []byte) (proto.Message, string, []byte, bool) {
			if method == "Multi" {
				return &pb.MultiResponse{RegionActionResult: []*pb.RegionActionResult{{ResultOrException: []*pb.ResultOrException{{Index: proto.Uint32(99)}}}}}, "", nil, true
			}
			return nil, "", nil, false
		}, multiOp, ErrMalformed},
		{"scan says more but no scanner", func(method string, param []byte) (proto.Message, string, []byte, bool) {
			if method == "Scan" && !isMetaScan(param) {
				return &pb.ScanResponse{MoreResults: proto.Bool(true), MoreResultsInRegion: proto.Bool(true), Results: []*pb.Result{{Cell: []*pb.Cell{{Row: []byte("r")}}}}}, "", nil, true
			}
			return nil, "", nil, false
		}, scanOp, ErrMalformed},
		{"server exception", func(method string, _ []byte) (proto.Message, string, []byte, bool) {
			if method == "Get" {
				return nil, "org.apache.hadoop.hbase.TableNotFoundException", nil, true
			}
			return nil, "", nil, false
		}, getOp, ErrTableNotFound},
		{"garbage frames until the deadline", func(method string, _ []byte) (proto.Message, string, []byte, bool) {
			if method == "Get" {
				return nil, "", garbage, true
			}
			return nil, "", nil, false
		}, getOp, ErrConnection},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var f *fakeHBase
			f = newFakeHBase(t, func(method string, param []byte) (proto.Message, string, []byte) {
				if m, ex, raw, ok := tc.answer(method, param); ok {
					return m, ex, raw
				}
				key := method
				if method == "Scan" && isMetaScan(param) {
					key = "Scan-meta"
				}
				if m, ok := metaAnswers(f.addr(), key); ok {
					return m, "", nil
				}
				switch method {
				case "Get":
					return &pb.GetResponse{}, "", nil
				case "Multi":
					return &pb.MultiResponse{}, "", nil
				}
				return nil, "java.lang.UnsupportedOperationException", nil
			})
			c, err := NewClient(Config{Addrs: []string{f.addr()}, OpTimeout: 2 * time.Second, RetryMax: 100 * time.Millisecond})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// No deadline: Config.OpTimeout (2s) bounds the retries.
			done := make(chan error, 1)
			go func() { done <- tc.op(context.Background(), c) }()
			select {
			case err := <-done:
				if !errors.Is(err, tc.want) {
					t.Fatalf("err %v, want %v", err, tc.want)
				}
			case <-time.After(20 * time.Second):
				t.Fatal("the operation hung past its OpTimeout")
			}
		})
	}
}

func getOp(ctx context.Context, c *Client) error {
	_, _, err := c.Get(ctx, "t", []byte("row"), "f")
	return err
}

func multiOp(ctx context.Context, c *Client) error {
	return c.ApplyAll(ctx, "t", []Mutation{{Row: []byte("row"), Family: "f", Columns: []Column{{Qualifier: []byte("q"), Value: []byte("v")}}}})
}

func scanOp(ctx context.Context, c *Client) error {
	return c.Scan(ctx, "t", ScanOptions{}, func(Row) error { return nil })
}

// TestReconnect: the server closes the connection after every answer (as one restarting or
// dropping idle connections would); each next call dials again and succeeds.
func TestReconnect(t *testing.T) {
	var f *fakeHBase
	var mu sync.Mutex
	gets := 0
	f = newFakeHBase(t, func(method string, param []byte) (proto.Message, string, []byte) {
		key := method
		if method == "Scan" && isMetaScan(param) {
			key = "Scan-meta"
		}
		if m, ok := metaAnswers(f.addr(), key); ok {
			return m, "", nil
		}
		mu.Lock()
		gets++
		mu.Unlock()
		// Answer, then the server side closes every connection it holds.
		go func() {
			time.Sleep(10 * time.Millisecond)
			f.mu.Lock()
			for _, c := range f.conns {
				c.Close()
			}
			f.conns = nil
			f.mu.Unlock()
		}()
		return &pb.GetResponse{Result: &pb.Result{Cell: []*pb.Cell{{Row: []byte("row"), Family: []byte("f"), Qualifier: []byte("q"), Value: []byte("v")}}}}, "", nil
	})
	c, err := NewClient(Config{Addrs: []string{f.addr()}, OpTimeout: 10 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 5 {
		r, found, err := c.Get(ctx, "t", []byte("row"), "f")
		if err != nil || !found {
			t.Fatalf("get %d: found %v, err %v", i, found, err)
		}
		if v, _ := r.Value("f", "q"); string(v) != "v" {
			t.Fatalf("get %d: %q", i, v)
		}
		// Wait until the server has dropped the connection before the next call.
		deadline := time.Now().Add(10 * time.Second)
		for {
			f.mu.Lock()
			n := len(f.conns)
			f.mu.Unlock()
			if n == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("server kept its connections")
			}
			time.Sleep(time.Millisecond)
		}
	}
	if gets < 5 {
		t.Fatalf("%d gets reached the server", gets)
	}
}

// TestCloseDuringCall: Close fails a call in flight promptly with ErrClosed or ErrConnection.
func TestCloseDuringCall(t *testing.T) {
	var f *fakeHBase
	block := make(chan struct{})
	f = newFakeHBase(t, func(method string, param []byte) (proto.Message, string, []byte) {
		key := method
		if method == "Scan" && isMetaScan(param) {
			key = "Scan-meta"
		}
		if m, ok := metaAnswers(f.addr(), key); ok {
			return m, "", nil
		}
		<-block // never answers a Get
		return &pb.GetResponse{}, "", nil
	})
	t.Cleanup(func() { close(block) }) // runs before the fake's own cleanup waits for it
	c, err := NewClient(Config{Addrs: []string{f.addr()}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, _, err := c.Get(context.Background(), "t", []byte("row"), "f")
		done <- err
	}()
	// Close once the Get is on the wire: the region is cached by then.
	deadline := time.Now().Add(10 * time.Second)
	for c.regions.lookup("t", []byte("row")) == nil {
		if time.Now().After(deadline) {
			t.Fatal("the Get never located its region")
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) && !errors.Is(err, ErrConnection) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Close did not end the call in flight")
	}
}
