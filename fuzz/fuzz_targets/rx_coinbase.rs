//! `RxCoinbase::parse` and `RxBlob::parse` (`otedama_core::rx`) on arbitrary bytes.
//!
//! Checks:
//! - nothing panics and nothing allocates past the input, whatever the bytes;
//! - whatever parses writes bytes that parse back to the same value (varints may be written
//!   longer than needed on the way in, so the bytes themselves may differ);
//! - a coinbase's total is the checked sum of its outputs.
#![no_main]

use libfuzzer_sys::fuzz_target;
use otedama_core::rx::{RxBlob, RxCoinbase, RxPayees};

fuzz_target!(|data: &[u8]| {
    if let Ok(coinbase) = RxCoinbase::parse(data) {
        assert_eq!(
            RxCoinbase::parse(&coinbase.to_bytes()).as_ref(),
            Ok(&coinbase)
        );
        if let RxPayees::Outputs { outputs, .. } = &coinbase.payees {
            let sum = outputs.iter().try_fold(0u64, |s, (_, v)| s.checked_add(*v));
            assert_eq!(coinbase.payees.total(), sum);
        }
    }
    if let Ok(blob) = RxBlob::parse(data) {
        assert_eq!(RxBlob::parse(&blob.to_bytes()).as_ref(), Ok(&blob));
    }
});
