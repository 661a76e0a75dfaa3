package rpc

import (
	"bytes"
	"errors"
	"testing"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/gridmap/gridmap/mapstore/hbase/internal/pb"
)

func frameOf(h *pb.ResponseHeader, body []byte, cellBlock []byte) []byte {
	hb, _ := proto.Marshal(h)
	b := protowire.AppendVarint(nil, uint64(len(hb)))
	b = append(b, hb...)
	if body != nil {
		b = protowire.AppendVarint(b, uint64(len(body)))
		b = append(b, body...)
	}
	return append(b, cellBlock...)
}

func TestDecodeResponse(t *testing.T) {
	body, _ := proto.Marshal(&pb.GetResponse{Result: &pb.Result{Cell: []*pb.Cell{{Row: []byte("r"), Value: []byte("v")}}}})
	r, err := DecodeResponse(frameOf(&pb.ResponseHeader{CallId: proto.Uint32(7)}, body, nil))
	if err != nil || r.Header.GetCallId() != 7 || !bytes.Equal(r.Body, body) || r.CellBlock != nil || r.Err() != nil {
		t.Fatalf("%+v %v", r, err)
	}
	r, err = DecodeResponse(frameOf(&pb.ResponseHeader{CallId: proto.Uint32(8), CellBlockMeta: &pb.CellBlockMeta{Length: proto.Uint32(3)}}, body, []byte{1, 2, 3}))
	if err != nil || !bytes.Equal(r.CellBlock, []byte{1, 2, 3}) {
		t.Fatalf("cell block: %+v %v", r, err)
	}
	r, err = DecodeResponse(frameOf(&pb.ResponseHeader{CallId: proto.Uint32(9), Exception: &pb.ExceptionResponse{ExceptionClassName: proto.String("x.Y")}}, nil, nil))
	var re *RemoteError
	if err != nil || !errors.As(r.Err(), &re) || re.Class != "x.Y" {
		t.Fatalf("exception: %+v %v", r, err)
	}
	if _, err := DecodeResponse(frameOf(&pb.ResponseHeader{CallId: proto.Uint32(8), CellBlockMeta: &pb.CellBlockMeta{Length: proto.Uint32(4)}}, body, []byte{1, 2, 3})); !errors.Is(err, ErrMalformed) {
		t.Fatalf("short cell block: %v", err)
	}
}

func TestRequestFraming(t *testing.T) {
	h := &pb.RequestHeader{CallId: proto.Uint32(3), MethodName: proto.String("Get"), RequestParam: proto.Bool(true)}
	req := &pb.GetRequest{Region: &pb.RegionSpecifier{Type: pb.RegionSpecifier_REGION_NAME.Enum(), Value: []byte("t,,1.abc.")}, Get: &pb.Get{Row: []byte("row")}}
	b, err := AppendRequest([]byte("prefix"), h, req)
	if err != nil {
		t.Fatal(err)
	}
	b = b[len("prefix"):]
	n := int(b[0])<<24 | int(b[1])<<16 | int(b[2])<<8 | int(b[3])
	if n != len(b)-4 {
		t.Fatalf("length %d, frame %d", n, len(b)-4)
	}
	hb, rest, err := delimited(b[4:])
	if err != nil {
		t.Fatal(err)
	}
	gh := &pb.RequestHeader{}
	if err := proto.Unmarshal(hb, gh); err != nil || !proto.Equal(gh, h) {
		t.Fatalf("header %v %v", gh, err)
	}
	pbytes, rest, err := delimited(rest)
	if err != nil || len(rest) != 0 {
		t.Fatalf("param: %v, %d left", err, len(rest))
	}
	greq := &pb.GetRequest{}
	if err := proto.Unmarshal(pbytes, greq); err != nil || !proto.Equal(greq, req) {
		t.Fatalf("param %v %v", greq, err)
	}
}

// FuzzDecodeResponse feeds arbitrary frames to the response decoder and to the decoding of the
// messages a client reads: errors are fine, panics are not. The seeds run with every go test.
//
//	go test -run '^$' -fuzz FuzzDecodeResponse -fuzztime 5m ./mapstore/hbase/internal/rpc
func FuzzDecodeResponse(f *testing.F) {
	body, _ := proto.Marshal(&pb.ScanResponse{ScannerId: proto.Uint64(1), MoreResults: proto.Bool(true), Results: []*pb.Result{{Cell: []*pb.Cell{{Row: []byte("r"), Family: []byte("f"), Value: []byte("v")}}}}})
	f.Add(frameOf(&pb.ResponseHeader{CallId: proto.Uint32(1)}, body, nil))
	f.Add(frameOf(&pb.ResponseHeader{CallId: proto.Uint32(2), CellBlockMeta: &pb.CellBlockMeta{Length: proto.Uint32(2)}}, body, []byte{9, 9}))
	f.Add(frameOf(&pb.ResponseHeader{CallId: proto.Uint32(3), Exception: &pb.ExceptionResponse{ExceptionClassName: proto.String("org.apache.hadoop.hbase.RegionMovedException"), Hostname: proto.String("h"), Port: proto.Int32(16020)}}, nil, nil))
	mbody, _ := proto.Marshal(&pb.MultiResponse{RegionActionResult: []*pb.RegionActionResult{{ResultOrException: []*pb.ResultOrException{{Index: proto.Uint32(0), Exception: &pb.NameBytesPair{Name: proto.String("x"), Value: []byte("y")}}}}}})
	f.Add(frameOf(&pb.ResponseHeader{CallId: proto.Uint32(4)}, mbody, nil))
	f.Add([]byte{})
	f.Add([]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01})
	f.Add([]byte{2, 8, 1, 100})
	f.Fuzz(func(t *testing.T, frame []byte) {
		r, err := DecodeResponse(frame)
		if err != nil {
			if !errors.Is(err, ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		_ = r.Err()
		for _, m := range []proto.Message{&pb.GetResponse{}, &pb.ScanResponse{}, &pb.MultiResponse{}, &pb.MutateResponse{}, &pb.GetMetaRegionLocationsResponse{}} {
			_ = proto.Unmarshal(r.Body, m)
		}
	})
}
