package gridmap

import (
	"context"

	"github.com/gridmap/gridmap/internal/memberhook"
)

// gridmaptest crashes members and starts them on in-memory networks through memberhook (kill
// and start stay unexported).
func init() {
	memberhook.Kill = func(m any) { m.(*Member).kill() }
	memberhook.Start = func(ctx context.Context, cfg any, nets *memberhook.Networks) (any, error) {
		m, err := start(ctx, cfg.(Config), nets)
		if err != nil {
			return nil, err
		}
		return m, nil
	}
}
