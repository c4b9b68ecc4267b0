package journal

import (
	"context"
	"fmt"
	"path/filepath"
)

// OpenBeside opens the journal of another target of the token whose lock
// holder holds, for one process that works on several targets of one
// token at once (a ceremony sending one HSM key to several clouds). The
// token's lock is a lock of the whole process, taken once, by holder's
// Open: taking it again would wait for ourselves. The journal's own lock
// is taken as Open takes it. holder must stay open while this journal is.
func OpenBeside(ctx context.Context, dir string, scope Scope, holder *Journal) (*Journal, error) {
	if holder == nil || holder.tokenLock == nil || holder.serial != scope.TokenSerial || scope.TokenSerial == "" {
		return nil, fmt.Errorf("journal for %s: opened beside a journal that does not hold token %q's lock", scope.Target, scope.TokenSerial)
	}
	if holder.path != "" && holder.path == scopePath(dir, scope) {
		return nil, fmt.Errorf("journal for %s: it is the holder's own journal", scope.Target)
	}
	return openScope(ctx, dir, scope, holder)
}

func scopePath(dir string, scope Scope) string { return filepath.Join(dir, scope.FileName()) }
