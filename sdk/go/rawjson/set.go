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
	if first, _, _ := find(b, name); first < 0 {
		// Add the member after the others: before the closing brace and
		// any whitespace ahead of it.
		end := len(b) - 1
		for spaceByte[b[end-1]] {
			end--
		}
		dst = append(dst, b[:end]...)
		if end > 1 {
			dst = append(dst, ',')
		}
		dst = append(AppendString(dst, name), ':')
		return append(appendValue(dst, value), '}'), nil
	}
	// Replace the first member's value, and leave the others out.
	from := 0     // b[from:] is still to be copied
	prevEnd := -1 // where the previous member's value ends
	found := false
	for i := skipSpace(b, 1); b[i] == '"'; {
		m := readMember(b, i)
		if nameIs(b[i:m.nameEnd], name) {
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
	return append(dst, b[from:]...), nil
}
