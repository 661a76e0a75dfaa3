package partition

import "errors"

var (
	// ErrInvalidTable is wrapped by every problem Table.Validate reports.
	ErrInvalidTable = errors.New("partition: invalid table")
	// ErrInvalidConfig is wrapped by every problem PlanConfig.Validate reports.
	ErrInvalidConfig = errors.New("partition: invalid plan config")
)
