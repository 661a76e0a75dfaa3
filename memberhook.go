package gridmap

import "github.com/gridmap/gridmap/internal/memberhook"

// gridmaptest crashes members through memberhook (Member.kill stays unexported).
func init() {
	memberhook.Kill = func(m any) { m.(*Member).kill() }
}
