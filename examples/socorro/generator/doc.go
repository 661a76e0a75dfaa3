// Package generator simulates crash clients for the Socorro demo. Its pure part gives the size
// distributions of the reports it sends, from the design the demo follows (JSON annotations of
// 256 B to 20 KB with a median of 1 KB; dumps of 200 KB to 20 MB with a median of 500 KB, a 75th
// percentile of 5 MB and a mean of about 4 MB), builds reports of drawn sizes from real
// minidumps and encodes them as a crash client posts them. Its Driver posts them to the nodes'
// /submit at a set rate, round-robin, and keeps every answered crash ID; steering it from the
// command topic comes with the rest of issue 16.
package generator
