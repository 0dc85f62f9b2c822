package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
)

func cmdConsume(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("consume", "consume [-b BROKERS] [-c FILE] -t TOPIC [--from-beginning] [--headers] [-n N] [--timeout D]", `Print the records of TOPIC, one line each: key<TAB>value, with a null key
printed as an empty one. Key and value are written as they are, so one that
holds a newline spans lines. Records of one partition come in order. With
--headers, a third column holds the record's headers as a JSON object: a
dead letter's error, its kind and where the record came from.

Without -n it runs until interrupted, or until --timeout passes with no
record. With -n it stops after N records, and fails if --timeout passes
first. It reads without a consumer group and commits nothing.`)
	var k kafkaFlags
	k.define(f)
	fromStart := f.Bool("from-beginning", false, "start at the earliest offset rather than at the end")
	headers := f.Bool("headers", false, "print each record's headers as a JSON object after its value")
	n := f.Int("n", 0, "stop after `N` records")
	idle := f.Duration("timeout", 0, "stop after `D` with no record (0: wait forever)")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if msg := k.check(f); msg != "" {
		return f.usageError(stderr, "%s", msg)
	}
	if *n < 0 || *idle < 0 {
		return f.usageError(stderr, "-n and --timeout must not be negative")
	}

	start := kgo.NewOffset().AtEnd()
	if *fromStart {
		start = kgo.NewOffset().AtStart()
	}
	cl, err := k.client(stderr, kgo.ConsumeTopics(k.topic), kgo.ConsumeResetOffset(start))
	if err != nil {
		fmt.Fprintf(stderr, "streamrt consume: %v\n", err)
		return exitFail
	}
	defer cl.Close()
	if err := k.checkTopic(ctx, cl); err != nil {
		fmt.Fprintf(stderr, "streamrt consume: %v\n", err)
		return exitFail
	}

	count := 0
	var out strings.Builder
	for {
		pollCtx, cancel := ctx, context.CancelFunc(func() {})
		if *idle > 0 {
			pollCtx, cancel = context.WithTimeout(ctx, *idle)
		}
		fetches := cl.PollFetches(pollCtx)
		cancel()
		if ctx.Err() != nil {
			return exitOK // interrupted
		}

		var fetchErr error
		fetches.EachError(func(topic string, partition int32, err error) {
			if fetchErr == nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				fetchErr = fmt.Errorf("topic %q partition %d: %w", topic, partition, err)
			}
		})
		if fetchErr != nil {
			fmt.Fprintf(stderr, "streamrt consume: %v\n", fetchErr)
			return exitFail
		}

		out.Reset()
		stop := false
		fetches.EachRecord(func(r *kgo.Record) {
			if stop {
				return
			}
			formatRecord(&out, r, *headers)
			count++
			stop = *n > 0 && count == *n
		})
		if _, err := io.WriteString(stdout, out.String()); err != nil {
			fmt.Fprintf(stderr, "streamrt consume: write: %v\n", err)
			return exitFail
		}
		if stop {
			return exitOK
		}
		if pollCtx.Err() != nil && fetches.NumRecords() == 0 {
			if *n > 0 {
				fmt.Fprintf(stderr, "streamrt consume: no record for %s; got %d of %d\n", *idle, count, *n)
				return exitFail
			}
			return exitOK
		}
	}
}
