//! A test guest: emits every record unchanged (key, value, headers,
//! timestamp inherited) to output "out". The Rust twin of the Go test guest
//! runtime/internal/wasm/testdata/guests/identity, for the host's benchmarks.

use streamrt::{EmitOptions, Output, Record, Result};

static OUT: Output = Output::new("out");

fn identity(r: &Record) -> Result<()> {
    OUT.emit_with(
        r.key,
        r.value,
        EmitOptions::new().record_headers(r.headers()),
    )
}

streamrt::export_stage!(record: identity);
