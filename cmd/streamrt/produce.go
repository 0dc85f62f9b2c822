package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

func cmdProduce(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("produce", "produce [-b BROKERS] [-c FILE] -t TOPIC < LINES", `Write each line of standard input as one record to TOPIC, in order, and exit
once every record is acknowledged, printing the count to standard error.

A line is key<TAB>value, split at the first tab: the value may hold more
tabs. A line without a tab is a value with a null key; an empty line is an
empty value with a null key; "<TAB>value" has an empty, not null, key. Values
are never null. A trailing "\r" is dropped with the newline. Records with the
same key go to the same partition, chosen as Kafka's default partitioner
does. The topic must exist: nothing is created.`)
	var k kafkaFlags
	k.define(f)
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if msg := k.check(f); msg != "" {
		return f.usageError(stderr, "%s", msg)
	}

	cl, err := k.client(stderr, kgo.RecordDeliveryTimeout(k.timeout))
	if err != nil {
		fmt.Fprintf(stderr, "streamrt produce: %v\n", err)
		return exitFail
	}
	defer cl.Close()
	if err := k.checkTopic(ctx, cl); err != nil {
		fmt.Fprintf(stderr, "streamrt produce: %v\n", err)
		return exitFail
	}

	var (
		mu       sync.Mutex
		acked    int
		failed   int
		firstErr error
	)
	done := func(_ *kgo.Record, err error) {
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			failed++
			if firstErr == nil {
				firstErr = err
			}
			return
		}
		acked++
	}
	// Lines are read on their own goroutine so that an interrupt is noticed
	// while standard input has nothing to say.
	lines := make(chan []byte, 64)
	readErrs := make(chan error, 1) // holds the read error, if any, before lines closes
	go func() {
		defer close(lines)
		in := bufio.NewReaderSize(stdin, 64<<10)
		for {
			line, err := in.ReadBytes('\n')
			if len(line) > 0 || err == nil {
				select {
				case lines <- line:
				case <-ctx.Done():
					return
				}
			}
			if err != nil {
				if err != io.EOF {
					readErrs <- err
				}
				return
			}
		}
	}()
	// An interrupt stops the reading; what was read is still delivered,
	// within the record delivery timeout.
	deliver := context.WithoutCancel(ctx)
	sent := 0
read:
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				break read
			}
			cl.Produce(deliver, parseLine(k.topic, line), done)
			sent++
		case <-ctx.Done():
			break read
		}
	}
	flushErr := cl.Flush(deliver)
	var readErr error
	select {
	case readErr = <-readErrs:
	default:
	}

	mu.Lock()
	defer mu.Unlock()
	fmt.Fprintf(stderr, "produced %s to %s\n", plural(acked, "record"), k.topic)
	switch {
	case readErr != nil:
		fmt.Fprintf(stderr, "streamrt produce: read standard input: %v\n", readErr)
		return exitFail
	case firstErr != nil:
		fmt.Fprintf(stderr, "streamrt produce: %d of %d records failed: %v\n", failed, sent, firstErr)
		return exitFail
	case flushErr != nil || acked != sent:
		fmt.Fprintf(stderr, "streamrt produce: only %d of %d records acknowledged: %v\n", acked, sent, errors.Join(flushErr, ctx.Err()))
		return exitFail
	}
	return exitOK
}

// parseLine turns one input line, with or without its newline, into a record.
func parseLine(topic string, line []byte) *kgo.Record {
	line = bytes.TrimSuffix(line, []byte("\n"))
	line = bytes.TrimSuffix(line, []byte("\r"))
	r := &kgo.Record{Topic: topic}
	if key, value, ok := bytes.Cut(line, []byte("\t")); ok {
		r.Key, r.Value = key, value
	} else {
		r.Value = line
	}
	if r.Value == nil { // an empty value, not a null one
		r.Value = []byte{}
	}
	return r
}

// plural renders n and noun, adding an s unless n is 1.
func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}
