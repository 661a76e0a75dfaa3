// Package generator simulates crash clients for the Socorro demo. This part of it is pure: the
// size distributions of the reports it sends, from the design the demo follows (JSON
// annotations of 256 B to 20 KB with a median of 1 KB; dumps of 200 KB to 20 MB with a median
// of 500 KB, a 75th percentile of 5 MB and a mean of about 4 MB), reports of drawn sizes built
// from real minidumps, and their encoding as a crash client posts them. The driver that posts
// them to /submit at a set rate comes with the rest of issue 16.
package generator
