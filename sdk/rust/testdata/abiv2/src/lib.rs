//! A test guest built against a future host ABI: it imports `emit` from
//! `streamrt_v2`, as a module built with a v2 SDK would. A v1 host must
//! refuse it at load, naming both versions.

use streamrt::{Record, Result};

#[cfg(target_arch = "wasm32")]
#[link(wasm_import_module = "streamrt_v2")]
extern "C" {
    #[link_name = "emit"]
    fn emit_v2(output: i32, rec: i32, key_ptr: *const u8, key_len: i32) -> i32;
}

fn handle(r: &Record) -> Result<()> {
    #[cfg(target_arch = "wasm32")]
    unsafe {
        let key = r.key.unwrap_or(&[]);
        emit_v2(0, r.index() as i32, key.as_ptr(), key.len() as i32);
    }
    let _ = r;
    Ok(())
}

streamrt::export_stage!(record: handle);
