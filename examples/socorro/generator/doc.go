// Package generator simulates crash clients for the Socorro demo. This file set holds its pure
// part: the size distributions of the crash reports it sends, from the design the demo follows
// (JSON annotations of 256 B to 20 KB with a median of 1 KB; dumps of 200 KB to 20 MB with a
// median of 500 KB, a 75th percentile of 5 MB and a mean of about 4 MB).
package generator
