// Command pipe runs the plain franz-go consume→produce loop of internal/pipe
// as a process of its own, the baseline of the side-by-side benchmark in
// bench/ (BENCHMARKS.md, "Side by side"):
//
//	pipe -brokers 127.0.0.1:9092 -group g -in clicks -out copy [-commit-interval 100ms]
//
// It runs until SIGINT or SIGTERM, then exits 0; it exits 1 when a produce,
// flush or commit fails and 2 on a usage error.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/streamrt/streamrt/internal/pipe"
)

func main() {
	fs := flag.NewFlagSet("pipe", flag.ContinueOnError)
	brokers := fs.String("brokers", "", "seed brokers, comma-separated")
	group := fs.String("group", "", "consumer group")
	in := fs.String("in", "", "input topic")
	out := fs.String("out", "", "output topic")
	interval := fs.Duration("commit-interval", 100*time.Millisecond, "how often to flush and commit")
	if err := fs.Parse(os.Args[1:]); err != nil {
		os.Exit(2)
	}
	if *brokers == "" || *group == "" || *in == "" || *out == "" || fs.NArg() > 0 {
		fmt.Fprintln(os.Stderr, "usage: pipe -brokers LIST -group G -in TOPIC -out TOPIC [-commit-interval D]")
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	err := pipe.Run(ctx, pipe.Config{
		Brokers:        strings.Split(*brokers, ","),
		Group:          *group,
		Input:          *in,
		Output:         *out,
		CommitInterval: *interval,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}
