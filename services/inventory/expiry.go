package inventory

import (
	"context"
	"fmt"
	"log/slog"
	"time"
)

// RunExpiry expires overdue reservations every interval until ctx ends.
// Reserve, Commit and Release also expire what is due before they act, so
// this loop only makes the returned units visible in the catalogue sooner.
func RunExpiry(ctx context.Context, store *Store, interval time.Duration, logger *slog.Logger) error {
	if interval <= 0 {
		return fmt.Errorf("expiry interval must be positive, got %s", interval)
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-ticker.C:
			n, err := store.ExpireReservations(ctx, time.Now())
			switch {
			case err != nil && ctx.Err() == nil:
				logger.ErrorContext(ctx, "expiring reservations failed", "error", err)
			case n > 0:
				logger.InfoContext(ctx, "expired reservations", "count", n)
			}
		}
	}
}
