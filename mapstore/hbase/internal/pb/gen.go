// Package pb holds the protobuf messages of HBase's native RPC protocol that mapstore/hbase uses,
// generated from hbase.proto (written for this project from HBase's protocol documentation; see
// the comment at its top). The generated file is committed, so building needs no protoc.
package pb

//go:generate protoc --go_out=. --go_opt=paths=source_relative hbase.proto
