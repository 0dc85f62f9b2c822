package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"strconv"
	"strings"

	"github.com/streamrt/streamrt/cmd/streamrt/internal/broker"
)

// flags is a subcommand's flag set with short aliases and a usage text that
// lists each flag once, as -c, --config FILE.
type flags struct {
	*flag.FlagSet
	synopsis string
	about    string
	shorts   map[string]string // long name -> short alias
	// args are the arguments that are not flags, wherever they stood.
	args []string
}

func newFlags(name, synopsis, about string) *flags {
	f := &flags{
		FlagSet:  flag.NewFlagSet("streamrt "+name, flag.ContinueOnError),
		synopsis: synopsis,
		about:    about,
		shorts:   make(map[string]string),
	}
	f.Usage = func() {} // parse prints usage itself, to the right stream
	return f
}

// alias makes -short another name for the flag --long.
func (f *flags) alias(short, long string) {
	f.Var(f.Lookup(long).Value, short, "")
	f.shorts[long] = short
}

// given returns the long names of the flags set on the command line.
func (f *flags) given() map[string]bool {
	long := make(map[string]string)
	for l, s := range f.shorts {
		long[s] = l
	}
	set := make(map[string]bool)
	f.Visit(func(fl *flag.Flag) {
		if l, ok := long[fl.Name]; ok {
			set[l] = true
		} else {
			set[fl.Name] = true
		}
	})
	return set
}

// parse parses args. On --help it prints the usage to stdout; on a bad flag,
// the error and the usage to stderr. ok is false if the caller should return
// code.
// Flags may follow arguments: streamrt query counts home --http ADDR.
func (f *flags) parse(args []string, stdout, stderr io.Writer) (code int, ok bool) {
	f.SetOutput(stderr)
	var err error
	for {
		if err = f.Parse(args); err != nil || f.FlagSet.NArg() == 0 {
			break
		}
		f.args = append(f.args, f.FlagSet.Arg(0))
		args = f.FlagSet.Args()[1:]
	}
	switch {
	case err == nil:
		return exitOK, true
	case errors.Is(err, flag.ErrHelp):
		f.printUsage(stdout)
		return exitOK, false
	default:
		fmt.Fprintln(stderr) // after the flag package's own message
		f.printUsage(stderr)
		return exitUsage, false
	}
}

// Args returns the arguments that are not flags.
func (f *flags) Args() []string { return f.args }

// NArg is len(Args()).
func (f *flags) NArg() int { return len(f.args) }

// Arg returns the ith argument that is not a flag, or "".
func (f *flags) Arg(i int) string {
	if i < 0 || i >= len(f.args) {
		return ""
	}
	return f.args[i]
}

// usageError reports a usage problem found after parsing and returns exitUsage.
func (f *flags) usageError(stderr io.Writer, format string, args ...any) int {
	fmt.Fprintf(stderr, "%s: %s\n\n", f.Name(), fmt.Sprintf(format, args...))
	f.printUsage(stderr)
	return exitUsage
}

// optionalArg is implemented by bool flags that also take =VALUE.
type optionalArg interface{ OptionalArg() string }

func (f *flags) printUsage(w io.Writer) {
	fmt.Fprintf(w, "Usage: streamrt %s\n\n%s\n", f.synopsis, f.about)
	aliases := make(map[string]bool)
	for _, s := range f.shorts {
		aliases[s] = true
	}
	var lines []string // in the order of the long names
	f.VisitAll(func(fl *flag.Flag) {
		if aliases[fl.Name] {
			return
		}
		name, help := flag.UnquoteUsage(fl)
		head := "  --" + fl.Name
		if len(fl.Name) == 1 {
			head = "  -" + fl.Name
		}
		if s, ok := f.shorts[fl.Name]; ok {
			head = "  -" + s + ", --" + fl.Name
		}
		if o, ok := fl.Value.(optionalArg); ok {
			head += "[=" + o.OptionalArg() + "]"
		} else if name != "" {
			head += " " + name
		}
		if d := fl.DefValue; d != "" && d != "false" && d != "0" && d != "0s" {
			help += fmt.Sprintf(" (default %s)", d)
		}
		lines = append(lines, head+"\n        "+strings.ReplaceAll(help, "\n", "\n        "))
	})
	if len(lines) == 0 {
		return
	}
	fmt.Fprintf(w, "\nFlags:\n%s\n", strings.Join(lines, "\n"))
}

// embeddedFlag is --embedded-broker: a bool flag that also accepts
// --embedded-broker=ADDR.
type embeddedFlag struct {
	on   bool
	addr string
}

func (e *embeddedFlag) String() string {
	if e == nil || !e.on {
		return ""
	}
	return e.addr
}

func (e *embeddedFlag) Set(s string) error {
	if on, err := strconv.ParseBool(s); err == nil {
		e.on, e.addr = on, broker.DefaultAddr
		return nil
	}
	if _, _, err := net.SplitHostPort(s); err != nil {
		return fmt.Errorf("want true, false or host:port, got %q", s)
	}
	e.on, e.addr = true, s
	return nil
}

func (e *embeddedFlag) IsBoolFlag() bool    { return true }
func (e *embeddedFlag) OptionalArg() string { return "ADDR" }

// splitList splits a comma-separated list, dropping blanks.
func splitList(s string) []string {
	var out []string
	for p := range strings.SplitSeq(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
