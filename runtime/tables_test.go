package runtime_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/streamrt/streamrt/internal/testkafka"
	"github.com/streamrt/streamrt/runtime"
	"github.com/streamrt/streamrt/runtime/internal/guesttest"
)

// A table whose topic does not exist, or a co-partitioned table whose topic
// is partitioned unlike the app, is refused at start by name.
func TestTableTopicsAreChecked(t *testing.T) {
	brokers := testkafka.Brokers(t)
	for _, tc := range []struct {
		name       string
		partitions int32 // of the table topic; 0: do not create it
		global     bool
		want       string
	}{
		{"missing topic", 0, false, "of table \"users\" does not exist"},
		{"missing global topic", 0, true, "of table \"users\" does not exist"},
		{"not co-partitioned", 3, false, "of co-partitioned table \"users\" has 3 partitions, app %q needs 4"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			base, in, out := names(t)
			users := base + "-users"
			if tc.partitions > 0 {
				testkafka.CreateTopic(t, brokers, users, tc.partitions)
			}
			a := startYAML(t, fmt.Sprintf(`app: %s
brokers: [%s]
partitions: 4
tables:
  - {name: users, topic: %s, global: %v}
stages:
  - name: join
    module: %s
    inputs: [%s]
    tables: [users]
    outputs: {left: %s, inner: %s-inner}
`, base, strings.Join(brokers, ","), users, tc.global, guesttest.Dir("joins"), in, out, out), "", false)
			select {
			case err := <-a.done:
				a.cancel = nil
				want := tc.want
				if strings.Contains(want, "%q") {
					want = fmt.Sprintf(want, base)
				}
				if !errors.Is(err, runtime.ErrTopics) || !strings.Contains(err.Error(), fmt.Sprintf("topic %q", users)) || !strings.Contains(err.Error(), want) {
					t.Fatalf("got %v, want ErrTopics naming %s: %s", err, users, want)
				}
			case <-time.After(60 * time.Second):
				t.Fatal("the app started")
			}
		})
	}
}
