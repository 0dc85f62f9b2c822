package abitest

import (
	"bytes"
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// The conformance transcript's lexer, shared by every runner of it.

// Tokens splits a line of the conformance transcript
// (testdata/conformance/conformance.txt) at spaces outside double quotes.
func Tokens(line string) ([]string, error) {
	var out []string
	var cur strings.Builder
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case c == '"':
			cur.WriteByte(c)
			for i++; ; i++ {
				if i >= len(line) {
					return nil, errors.New("unterminated string")
				}
				cur.WriteByte(line[i])
				if line[i] == '\\' && i+1 < len(line) {
					i++
					cur.WriteByte(line[i])
				} else if line[i] == '"' {
					break
				}
			}
		case c == ' ' || c == '\t':
			if cur.Len() > 0 {
				out = append(out, cur.String())
				cur.Reset()
			}
		default:
			cur.WriteByte(c)
		}
	}
	if cur.Len() > 0 {
		out = append(out, cur.String())
	}
	return out, nil
}

// Value decodes a value of the conformance transcript: null, "quoted"
// (optionally *N, repeated N times), hex:HEX, or a bare word.
func Value(s string) ([]byte, error) {
	if s == "null" {
		return nil, nil
	}
	if h, ok := strings.CutPrefix(s, "hex:"); ok {
		out := make([]byte, 0, len(h)/2)
		for i := 0; i+1 < len(h); i += 2 {
			v, err := strconv.ParseUint(h[i:i+2], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("bad hex %s", s)
			}
			out = append(out, byte(v))
		}
		if len(h)%2 != 0 {
			return nil, fmt.Errorf("bad hex %s", s)
		}
		return out, nil
	}
	if !strings.HasPrefix(s, `"`) {
		return []byte(s), nil
	}
	out := []byte{}
	i := 1
	for ; ; i++ {
		if i >= len(s) {
			return nil, fmt.Errorf("unterminated string %s", s)
		}
		c := s[i]
		if c == '"' {
			break
		}
		if c != '\\' {
			out = append(out, c)
			continue
		}
		if i+1 >= len(s) {
			return nil, fmt.Errorf("bad escape in %s", s)
		}
		i++
		switch s[i] {
		case '\\', '"':
			out = append(out, s[i])
		case 'n':
			out = append(out, '\n')
		case 't':
			out = append(out, '\t')
		case 'x':
			if i+2 >= len(s) {
				return nil, fmt.Errorf("bad escape in %s", s)
			}
			v, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil {
				return nil, fmt.Errorf("bad escape in %s", s)
			}
			out = append(out, byte(v))
			i += 2
		default:
			return nil, fmt.Errorf("bad escape in %s", s)
		}
	}
	rest := s[i+1:]
	if rest == "" {
		return out, nil
	}
	n, err := strconv.Atoi(strings.TrimPrefix(rest, "*"))
	if !strings.HasPrefix(rest, "*") || err != nil || n < 0 {
		return nil, fmt.Errorf("bad value %s", s)
	}
	return bytes.Repeat(out, n), nil
}
