package minidump_test

import (
	"fmt"
	"os"

	"github.com/gridmap/gridmap/examples/socorro/minidump"
)

// Read a dump a Breakpad client wrote for a Windows XP process that wrote through a bad pointer.
func Example() {
	data, err := os.ReadFile("testdata/test.dmp")
	if err != nil {
		fmt.Println(err)
		return
	}
	d, err := minidump.Parse(data)
	if err != nil {
		fmt.Println(err)
		return
	}
	c, notes, err := d.Crash()
	if err != nil {
		fmt.Println(err)
		return
	}
	pid, _ := d.ProcessID()
	fmt.Println(d.System.OS(), d.System.OSVersion(), d.System.CPUArch(), "pid", pid)
	fmt.Printf("%s at %#x, thread %d\n", c.Reason, c.Address, c.ThreadIndex)
	fmt.Printf("%s@%#x %d notes\n", c.Module.BaseName(), c.ModuleOffset, len(notes))
	// Output:
	// Windows NT 5.1.2600 Service Pack 2 x86 pid 3932
	// EXCEPTION_ACCESS_VIOLATION_WRITE at 0x45, thread 0
	// test_app.exe@0x429e 0 notes
}
