package processor_test

import (
	"fmt"
	"os"
	"time"

	"github.com/gridmap/gridmap/examples/socorro/processor"
)

func ExampleProcess() {
	dump, err := os.ReadFile("../minidump/testdata/linux-mini.dmp")
	if err != nil {
		fmt.Println(err)
		return
	}
	raw := &processor.Raw{
		ID:          "de1bb258-cbbf-4589-a673-34f800261204",
		Submitted:   time.Date(2026, 12, 4, 9, 30, 0, 0, time.UTC),
		Annotations: map[string]string{"ProductName": "Firefox", "Version": "128.0"},
		Dumps:       map[string][]byte{processor.MainDump: dump},
	}
	c := processor.Process(raw, nil, time.Date(2026, 12, 4, 9, 30, 1, 0, time.UTC))
	fmt.Println(c.Product, c.Version, c.OSName, c.CPUArch)
	fmt.Println(c.Reason, c.Address)
	fmt.Println(c.Signature, c.MinidumpStatus)
	// Output:
	// Firefox 128.0 Linux amd64
	// SIGSEGV 0x45
	// crash@0x1d72 OK
}
