package engine

// updatePause pauses a task's fetching while it waits: everything while its
// stores restore or after the fail policy stopped it, its inputs while its
// tables catch up to where they ended at assignment; and resumes what it no
// longer waits for. It publishes the change to queries. Callers hold e.mu.
func (e *Engine) updatePause(t *task) {
	inputs, tables := map[string][]int32{}, map[string][]int32{}
	for _, topic := range t.stage.inputs {
		if !t.isTableTopic(topic) {
			inputs[topic] = []int32{t.partition}
		}
	}
	for _, tt := range t.stage.tables {
		if !tt.Global {
			tables[tt.Topic] = []int32{t.partition}
		}
	}
	switch {
	case t.restoring, t.stopped != nil:
		e.cl.PauseFetchPartitions(inputs)
		e.cl.PauseFetchPartitions(tables)
	case len(t.catchUp) > 0:
		e.cl.PauseFetchPartitions(inputs)
		e.cl.ResumeFetchPartitions(tables)
	default:
		e.cl.ResumeFetchPartitions(inputs)
		e.cl.ResumeFetchPartitions(tables)
	}
	e.publish()
}
