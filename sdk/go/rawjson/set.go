package rawjson

// Set appends to dst a copy of the object obj in which member name has
// value, and returns the extended slice. The first member named name gets
// the value in its place and later members of that name are left out (so
// decoders that keep the first and those that keep the last read the same);
// when obj has no such member, it is added after the others. The rest of
// obj is copied as written, whitespace included, not re-encoded; name is
// written as AppendString writes it, and value as written (the zero Value
// as null). When obj is not an object, Set returns dst unchanged and
// ErrNotObject.
//
// This is how a stage adds a field to a record's JSON value:
//
//	out, err = rawjson.Set(out[:0], order, "product", product)
func Set(dst []byte, obj Value, name string, value Value) ([]byte, error) {
	b := obj.raw
	if len(b) == 0 || b[0] != '{' {
		return dst, ErrNotObject
	}
	from := 0     // b[from:] is still to be copied
	prevEnd := -1 // where the previous member's value ends
	found := false
	for i := skipSpace(b, 1); b[i] == '"'; {
		m := readMember(b, i)
		inner := b[i+1 : m.nameEnd-1]
		if m.plainName && string(inner) == name || !m.plainName && unquotedIs(inner, name) {
			if !found {
				dst = append(dst, b[from:m.valStart]...)
				dst = appendValue(dst, value)
				found = true
			} else {
				// Leave out the comma after the previous member, and this one.
				dst = append(dst, b[from:prevEnd]...)
			}
			from = m.valEnd
		}
		prevEnd = m.valEnd
		i = m.next
	}
	if found {
		return append(dst, b[from:]...), nil
	}
	if prevEnd < 0 {
		dst = append(dst, '{')
	} else {
		dst = append(append(dst, b[:prevEnd]...), ',')
	}
	dst = append(AppendString(dst, name), ':')
	return append(appendValue(dst, value), '}'), nil
}
