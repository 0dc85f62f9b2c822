// Command streamrt runs streamrt apps and talks to the Kafka topics and query
// APIs around them.
//
//	streamrt run -c app.yaml --embedded-broker   run an app (and a dev broker)
//	streamrt produce -t clicks < lines.tsv       write key<TAB>value lines to a topic
//	streamrt consume -t counts --from-beginning  print a topic as key<TAB>value lines
//	streamrt query click-counts page-1           read a key from a running app's store
//	streamrt status --watch                      a running app's tasks, lag and dead letters
//	streamrt version
//
// Exit codes: 0 success, 1 failure at run time, 2 usage error.
package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/signal"
	goruntime "runtime"
	"syscall"
)

// version is set at build time: go build -ldflags "-X main.version=v1.2.3".
var version = "dev"

// Exit codes.
const (
	exitOK    = 0
	exitFail  = 1
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}

// run runs the command line args (without the program name) and returns the
// exit code. Its context ends on SIGINT or SIGTERM; a second signal, arriving
// once the command had its chance to stop, kills the process as usual.
func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	go func() {
		<-ctx.Done()
		stop()
	}()
	return runCommand(ctx, args, stdin, stdout, stderr)
}

// command is one subcommand.
type command struct {
	name    string
	summary string
	run     func(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int
}

var commands = []command{
	{"run", "run an app from its config file", cmdRun},
	{"server", "run a server instance that hosts the cluster's deployed apps", cmdServer},
	{"deploy", "deploy an app, or a new version of it, to a cluster of servers", cmdDeploy},
	{"apps", "list a cluster's apps and what each instance runs", cmdApps},
	{"rollback", "make an earlier version of an app the one in force", cmdRollback},
	{"promote", "run an app's canary version on every partition", cmdPromote},
	{"delete", "delete an app from a cluster", cmdDelete},
	{"tenants", "manage the teams whose apps share a cluster: grants, quotas, tokens", cmdTenants},
	{"audit", "print the changes made to a cluster: deploys, rollbacks, tenants", cmdAudit},
	{"produce", "write stdin lines (key<TAB>value) as records to a topic", cmdProduce},
	{"consume", "print a topic's records as key<TAB>value lines", cmdConsume},
	{"query", "read one key from a store of a running app", cmdQuery},
	{"status", "show a running app at a glance: tasks, lag, restores, dead letters", cmdStatus},
	{"version", "print the version", cmdVersion},
}

func runCommand(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		usage(stderr)
		return exitUsage
	}
	name, rest := args[0], args[1:]
	switch name {
	case "-h", "-help", "--help":
		usage(stdout)
		return exitOK
	case "help":
		if len(rest) == 0 {
			usage(stdout)
			return exitOK
		}
		name, rest = rest[0], []string{"--help"}
	}
	for _, c := range commands {
		if c.name == name {
			return c.run(ctx, rest, stdin, stdout, stderr)
		}
	}
	fmt.Fprintf(stderr, "streamrt: unknown command %q\n\n", name)
	usage(stderr)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprint(w, `streamrt folds Kafka topics into partitioned, queryable state, with each
app's logic in a WebAssembly module.

Usage:
  streamrt <command> [flags] [arguments]

Commands:
`)
	for _, c := range commands {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprint(w, `
Run 'streamrt <command> --help' for a command's flags.
Exit codes: 0 success, 1 failure, 2 usage error.
`)
}

func cmdVersion(_ context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	f := newFlags("version", "version", "Print the version of streamrt and of the Go toolchain that built it.")
	if code, ok := f.parse(args, stdout, stderr); !ok {
		return code
	}
	if f.NArg() > 0 {
		return f.usageError(stderr, "unexpected argument %q", f.Arg(0))
	}
	fmt.Fprintf(stdout, "streamrt %s %s %s/%s\n", version, goruntime.Version(), goruntime.GOOS, goruntime.GOARCH)
	return exitOK
}
