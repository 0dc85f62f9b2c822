package engine

import (
	"context"
	"fmt"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// sender hands a cycle's records to the producer as soon as they are
// final, so that Kafka receives outputs while the cycle goes on and the
// commit waits only for what is still in flight. Under exactly_once the
// records go into the cycle's transaction, which the first send begins. The
// tasks of a round send from their own goroutines; the commit sends what
// waits for it (changelog records, outputs that keep the latest record per
// key) and then finishes the cycle.
type sender struct {
	cl   *kgo.Client
	sess *kgo.GroupTransactSession // exactly_once only
	env  *env                      // for the messages of ACL errors

	mu   sync.Mutex
	open bool  // the cycle's transaction has begun
	err  error // the first produce of the cycle that failed
}

// send produces rs, counting them per topic in s's metrics. A failure of
// any record fails the cycle (finish reports it); send itself fails only
// when a transaction cannot begin.
func (s *sender) send(ctx context.Context, st *stage, rs []*kgo.Record) error {
	if len(rs) == 0 {
		return nil
	}
	if err := s.begin(); err != nil {
		return err
	}
	for _, r := range rs {
		st.counted(r.Topic).Inc()
		s.cl.Produce(ctx, r, s.done)
	}
	return nil
}

// begin opens the cycle's transaction under exactly_once, once.
func (s *sender) begin() error {
	if s.sess == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.open {
		return nil
	}
	if err := s.sess.Begin(); err != nil {
		return fmt.Errorf("begin transaction: %w", err)
	}
	s.open = true
	return nil
}

func (s *sender) done(r *kgo.Record, err error) {
	if err == nil {
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.err == nil {
		if s.err = s.env.denied(err, "producing", "WRITE", r.Topic); s.err == nil {
			s.err = fmt.Errorf("produce to %q: %w", r.Topic, err)
		}
	}
}

// finish waits until Kafka has every record of the cycle: acknowledged
// under at-least-once; committed in the transaction, with the input
// offsets the session tracks, under exactly_once (or aborted, when abort is
// set or a record failed). It returns why the cycle did not make it, and
// starts the next cycle either way.
func (s *sender) finish(ctx context.Context, abort bool, onStuck func()) error {
	defer func() {
		s.mu.Lock()
		s.open, s.err = false, nil
		s.mu.Unlock()
	}()
	if s.sess == nil {
		err := s.cl.Flush(ctx)
		if ferr := s.failed(); ferr != nil {
			return ferr
		}
		return err
	}
	if err := s.begin(); err != nil { // a cycle with nothing to send still commits its offsets
		return err
	}
	end := kgo.TryCommit
	if abort || s.failed() != nil {
		end = kgo.TryAbort
	}
	committed, err := s.sess.End(ctx, end)
	if err != nil {
		// End gave up (its deadline passed while the broker was away) and
		// left the transaction open: it must be aborted before another
		// can begin.
		onStuck()
	}
	switch {
	case s.failed() != nil:
		return s.failed()
	case abort:
		return fmt.Errorf("transaction aborted: a task stopped after sending part of its cycle")
	case !committed:
		return fmt.Errorf("transaction aborted (a rebalance or a broker fault): %v", err)
	}
	return nil
}

// failed returns the first failed produce of the cycle.
func (s *sender) failed() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.err
}
