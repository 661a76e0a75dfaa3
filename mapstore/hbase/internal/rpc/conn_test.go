package rpc

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"testing"
	"time"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
)

// fakeServer accepts one connection, checks the preamble and connection header, and hands
// every request (header and parameter bytes) to handle, which writes whatever it likes.
type fakeServer struct {
	ln          net.Listener
	header      chan *pb.ConnectionHeader
	handle      func(w io.Writer, h *pb.RequestHeader, param []byte)
	wg          sync.WaitGroup
	mu          sync.Mutex
	conns       []net.Conn
	t           *testing.T
	badPreamble chan []byte
}

func newFakeServer(t *testing.T, handle func(w io.Writer, h *pb.RequestHeader, param []byte)) *fakeServer {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &fakeServer{ln: ln, header: make(chan *pb.ConnectionHeader, 4), handle: handle, t: t, badPreamble: make(chan []byte, 1)}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(func() {
		ln.Close()
		s.mu.Lock()
		for _, c := range s.conns {
			c.Close()
		}
		s.mu.Unlock()
		s.wg.Wait()
	})
	return s
}

func (s *fakeServer) accept() {
	defer s.wg.Done()
	for {
		c, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		s.conns = append(s.conns, c)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(c)
	}
}

func (s *fakeServer) serve(c net.Conn) {
	defer s.wg.Done()
	defer c.Close()
	br := bufio.NewReader(c)
	pre := make([]byte, 6)
	if _, err := io.ReadFull(br, pre); err != nil {
		return
	}
	if !bytes.Equal(pre, preamble) {
		s.badPreamble <- pre
		return
	}
	var lb [4]byte
	if _, err := io.ReadFull(br, lb[:]); err != nil {
		return
	}
	hb := make([]byte, binary.BigEndian.Uint32(lb[:]))
	if _, err := io.ReadFull(br, hb); err != nil {
		return
	}
	ch := &pb.ConnectionHeader{}
	if err := proto.Unmarshal(hb, ch); err != nil {
		return
	}
	s.header <- ch
	var wmu sync.Mutex
	for {
		if _, err := io.ReadFull(br, lb[:]); err != nil {
			return
		}
		frame := make([]byte, binary.BigEndian.Uint32(lb[:]))
		if _, err := io.ReadFull(br, frame); err != nil {
			return
		}
		hdr, rest, err := delimited(frame)
		if err != nil {
			return
		}
		h := &pb.RequestHeader{}
		if proto.Unmarshal(hdr, h) != nil {
			return
		}
		param, _, err := delimited(rest)
		if err != nil {
			return
		}
		go func() {
			wmu.Lock()
			defer wmu.Unlock()
			s.handle(c, h, param)
		}()
	}
}

// writeResponse writes a well-formed response frame.
func writeResponse(w io.Writer, h *pb.ResponseHeader, body proto.Message) {
	var b []byte
	hb, _ := proto.Marshal(h)
	b = protowire.AppendVarint(b, uint64(len(hb)))
	b = append(b, hb...)
	if body != nil {
		bb, _ := proto.Marshal(body)
		b = protowire.AppendVarint(b, uint64(len(bb)))
		b = append(b, bb...)
	}
	w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
	w.Write(b)
}

func dial(t *testing.T, s *fakeServer) *Conn {
	t.Helper()
	c, err := Dial(context.Background(), s.ln.Addr().String(), ClientService, Options{User: "tester", DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestConnectionHeader(t *testing.T) {
	s := newFakeServer(t, func(io.Writer, *pb.RequestHeader, []byte) {})
	dial(t, s)
	select {
	case h := <-s.header:
		if h.GetServiceName() != ClientService || h.GetUserInfo().GetEffectiveUser() != "tester" {
			t.Fatalf("connection header %v", h)
		}
	case pre := <-s.badPreamble:
		t.Fatalf("preamble %q", pre)
	case <-time.After(10 * time.Second):
		t.Fatal("no connection header")
	}
}

// TestManyCallsInFlight answers calls in reverse order of arrival: each caller must get its own
// answer (matched by call ID), on one connection.
func TestManyCallsInFlight(t *testing.T) {
	const n = 50
	var mu sync.Mutex
	var held []*pb.RequestHeader
	var heldRows [][]byte
	s := newFakeServer(t, func(w io.Writer, h *pb.RequestHeader, param []byte) {
		req := getReq()
		if err := proto.Unmarshal(param, req); err != nil {
			return
		}
		mu.Lock()
		held = append(held, h)
		heldRows = append(heldRows, req.GetGet().GetRow())
		if len(held) < n {
			mu.Unlock()
			return
		}
		hs, rows := held, heldRows
		mu.Unlock()
		for i := len(hs) - 1; i >= 0; i-- {
			writeResponse(w, &pb.ResponseHeader{CallId: hs[i].CallId}, &pb.GetResponse{Result: &pb.Result{Cell: []*pb.Cell{{Row: rows[i], Value: rows[i]}}}})
		}
	})
	c := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			row := []byte{byte(i)}
			resp := &pb.GetResponse{}
			if err := c.Call(ctx, "Get", &pb.GetRequest{Region: &pb.RegionSpecifier{Type: pb.RegionSpecifier_REGION_NAME.Enum(), Value: []byte("r")}, Get: &pb.Get{Row: row}}, resp); err != nil {
				errs <- err
				return
			}
			if got := resp.GetResult().GetCell()[0].GetValue(); !bytes.Equal(got, row) {
				errs <- errors.New("answer of another call")
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func TestRemoteException(t *testing.T) {
	s := newFakeServer(t, func(w io.Writer, h *pb.RequestHeader, _ []byte) {
		writeResponse(w, &pb.ResponseHeader{CallId: h.CallId, Exception: &pb.ExceptionResponse{
			ExceptionClassName: proto.String("org.apache.hadoop.hbase.NotServingRegionException"),
			StackTrace:         proto.String("org.apache.hadoop.hbase.NotServingRegionException: r is not online\n\tat Foo.bar"),
			DoNotRetry:         proto.Bool(false),
		}}, nil)
	})
	c := dial(t, s)
	err := c.Call(context.Background(), "Get", getReq(), &pb.GetResponse{})
	var re *RemoteError
	if !errors.As(err, &re) || re.ShortClass() != "NotServingRegionException" || re.Message != "org.apache.hadoop.hbase.NotServingRegionException: r is not online" {
		t.Fatalf("err %v (%#v)", err, re)
	}
	// The connection still works after an exception.
	if c.Err() != nil {
		t.Fatalf("connection failed: %v", c.Err())
	}
}

// TestMalformedResponses sends broken answers: each call fails with a clear error (never a
// panic, never a hang), and a frame that cannot be matched to its call fails the connection.
func TestMalformedResponses(t *testing.T) {
	cases := []struct {
		name  string
		write func(w io.Writer, h *pb.RequestHeader)
		want  error
	}{
		{"garbage header", func(w io.Writer, _ *pb.RequestHeader) {
			w.Write([]byte{0, 0, 0, 3, 0xff, 0xff, 0xff})
		}, ErrMalformed},
		{"header length past frame", func(w io.Writer, _ *pb.RequestHeader) {
			w.Write([]byte{0, 0, 0, 2, 50, 1})
		}, ErrMalformed},
		{"no call id", func(w io.Writer, _ *pb.RequestHeader) {
			writeResponse(w, &pb.ResponseHeader{}, &pb.GetResponse{})
		}, ErrMalformed},
		{"body not a GetResponse", func(w io.Writer, h *pb.RequestHeader) {
			hb, _ := proto.Marshal(&pb.ResponseHeader{CallId: h.CallId})
			b := protowire.AppendVarint(nil, uint64(len(hb)))
			b = append(b, hb...)
			b = append(b, 3, 0x0a, 0x05, 0x01) // a field claiming 5 bytes, 1 present
			w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
			w.Write(b)
		}, ErrMalformed},
		{"unannounced cell block", func(w io.Writer, h *pb.RequestHeader) {
			hb, _ := proto.Marshal(&pb.ResponseHeader{CallId: h.CallId})
			b := protowire.AppendVarint(nil, uint64(len(hb)))
			b = append(b, hb...)
			b = append(b, 0, 1, 2, 3)
			w.Write(binary.BigEndian.AppendUint32(nil, uint32(len(b))))
			w.Write(b)
		}, ErrMalformed},
		{"huge frame", func(w io.Writer, _ *pb.RequestHeader) {
			w.Write([]byte{0xff, 0xff, 0xff, 0xff})
		}, ErrFrameTooLarge},
		{"truncated frame then close", func(w io.Writer, _ *pb.RequestHeader) {
			w.Write([]byte{0, 0, 1, 0, 1, 2})
			w.(net.Conn).Close()
		}, ErrConnection},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := newFakeServer(t, func(w io.Writer, h *pb.RequestHeader, _ []byte) { tc.write(w, h) })
			c := dial(t, s)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			err := c.Call(ctx, "Get", getReq(), &pb.GetResponse{})
			if !errors.Is(err, tc.want) {
				t.Fatalf("err %v, want %v", err, tc.want)
			}
		})
	}
}

func TestCallContextEnds(t *testing.T) {
	s := newFakeServer(t, func(io.Writer, *pb.RequestHeader, []byte) {}) // never answers
	c := dial(t, s)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := c.Call(ctx, "Get", getReq(), &pb.GetResponse{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err %v", err)
	}
	c.mu.Lock()
	n := len(c.pending)
	c.mu.Unlock()
	if n != 0 {
		t.Fatalf("%d calls still pending", n)
	}
}

func TestCloseFailsCallsInFlight(t *testing.T) {
	s := newFakeServer(t, func(io.Writer, *pb.RequestHeader, []byte) {})
	c := dial(t, s)
	done := make(chan error, 1)
	go func() { done <- c.Call(context.Background(), "Get", getReq(), &pb.GetResponse{}) }()
	deadline := time.Now().Add(10 * time.Second)
	for {
		c.mu.Lock()
		n := len(c.pending)
		c.mu.Unlock()
		if n == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("call never pending")
		}
		time.Sleep(time.Millisecond)
	}
	c.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrConnection) {
			t.Fatalf("err %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("call not failed by Close")
	}
	if err := c.Call(context.Background(), "Get", getReq(), nil); !errors.Is(err, ErrConnection) {
		t.Fatalf("call after close: %v", err)
	}
}

// getReq is a valid GetRequest (proto2 required fields set).
func getReq() *pb.GetRequest {
	return &pb.GetRequest{Region: &pb.RegionSpecifier{Type: pb.RegionSpecifier_REGION_NAME.Enum(), Value: []byte("r")}, Get: &pb.Get{Row: []byte("row")}}
}
