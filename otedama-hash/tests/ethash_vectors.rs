//! Every published Ethash and KawPow vector, through the public API: epoch seeds and sizes,
//! light-cache digests, dataset items, KawPow's L1 cache, and mix and final hashes (by the
//! epoch context, by the kernels, and through verification). KawPow must also *not* reproduce
//! the ProgPoW 0.9.3 contrast entries. The files are copies of the shared vector set; a
//! mismatch anywhere fails.
//!
//! No test here builds a full dataset except the ignored ones at the end; run those with
//! `cargo test --release -p otedama-hash --test ethash_vectors -- --ignored` (about 20 seconds
//! per dataset on two cores, and 1 GiB of memory each).

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use otedama_core::{Difficulty, DifficultyConvention, Target};
use otedama_hash::{
    epoch_seed, Algorithm, DagAlgorithm, DagMode, EpochCache, EpochContext, EpochParams, Ethash,
    HashError, KawPow, NonceWidth, PowAlgorithm, ScanJob, ShareClaim, Verification, MAX_EPOCH,
};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("vector file");
    serde_json::from_str(&text).expect("vector json")
}

fn entries(file: &str, kind: &str) -> Vec<Value> {
    let all: Vec<Value> = load(file)
        .into_iter()
        .filter(|e| e["kind"] == kind)
        .collect();
    assert!(!all.is_empty(), "no {kind} entries in {file}");
    all
}

fn hex_field(entry: &Value, key: &str) -> Vec<u8> {
    let s = entry[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing {key} in {entry}"));
    hex::decode(s).expect("hex")
}

fn hex32(entry: &Value, key: &str) -> [u8; 32] {
    hex_field(entry, key).try_into().expect("32 bytes")
}

fn u64_field(entry: &Value, key: &str) -> u64 {
    entry[key]
        .as_u64()
        .unwrap_or_else(|| panic!("missing {key} in {entry}"))
}

fn nonce(entry: &Value) -> u64 {
    let from_hex = u64::from_str_radix(entry["nonce_hex"].as_str().expect("nonce_hex"), 16)
        .expect("nonce hex");
    if let Some(n) = entry["nonce_u64"].as_u64() {
        assert_eq!(n, from_hex, "nonce fields disagree in {entry}");
    }
    from_hex
}

/// The 40-byte kernel input: header hash, then the nonce little-endian.
fn input40(header: &[u8; 32], nonce: u64) -> Vec<u8> {
    let mut input = header.to_vec();
    input.extend_from_slice(&nonce.to_le_bytes());
    input
}

/// One cache for the whole file, large enough to keep every epoch the hash vectors use, so
/// tests running in parallel share (and race for) the same contexts.
fn epochs() -> &'static EpochCache {
    static CACHE: OnceLock<EpochCache> = OnceLock::new();
    CACHE.get_or_init(|| EpochCache::new(16))
}

/// The boundary just below `hash` (read big-endian), so that `hash` does not meet it.
fn just_below(hash: &[u8; 32]) -> Target {
    let mut bytes = *hash;
    for b in bytes.iter_mut().rev() {
        let (v, borrow) = b.overflowing_sub(1);
        *b = v;
        if !borrow {
            break;
        }
    }
    Target::from_be_bytes(bytes)
}

/// Checks one hash entry every way the API offers: the context, the kernel (`hash`,
/// `hash_header`), and `verify` (valid, above the boundary, wrong mix).
fn check_hash_entry(algorithm: DagAlgorithm, e: &Value) {
    let height = u64_field(e, "block_number");
    let header = hex32(e, "header_hash_hex");
    let nonce = nonce(e);
    let mix = hex32(e, "mix_hash_hex");
    let final_hash = hex32(e, "final_hash_hex");
    let epoch = algorithm.epoch_of(height).expect("epoch");
    assert_eq!(u64::from(epoch), u64_field(e, "epoch"), "{e}");

    let context = epochs().context(algorithm, epoch).expect("context");
    let out = context.hash(height, &header, nonce).expect("hash");
    assert_eq!(out.mix, Some(mix), "mix of {e}");
    assert_eq!(out.hash, final_hash, "final of {e}");

    let kernel: Box<dyn PowAlgorithm> = match algorithm {
        DagAlgorithm::Ethash => Box::new(Ethash::new(height, epochs()).expect("kernel")),
        DagAlgorithm::KawPow => Box::new(KawPow::new(height, epochs()).expect("kernel")),
    };
    assert_eq!(kernel.algorithm(), algorithm.algorithm());
    assert_eq!(kernel.hash(&input40(&header, nonce)).expect("hash"), out);

    // Verification: the final hash exactly at the boundary passes; one below fails cheaply;
    // a wrong mix hash is caught.
    let at = Target::from_be_bytes(final_hash);
    assert_eq!(
        epochs()
            .verify(algorithm, height, &header, nonce, &mix, &at)
            .expect("verify"),
        Verification::Valid(out)
    );
    assert!(matches!(
        context.verify(height, &header, nonce, &mix, &just_below(&final_hash)),
        Ok(Verification::AboveBoundary { final_hash: f }) if f == final_hash
    ));
    let mut forged = mix;
    forged[31] ^= 1;
    match context
        .verify(height, &header, nonce, &forged, &Target::MAX)
        .expect("verify")
    {
        Verification::MixMismatch { claimed, expected } => {
            assert_eq!(claimed, forged);
            assert_eq!(expected, mix);
        }
        other => panic!("forged mix accepted: {other:?}"),
    }
}

#[test]
fn ethash_hashes() {
    for e in entries("ethash.json", "ethash_hash") {
        check_hash_entry(DagAlgorithm::Ethash, &e);
        let final_hash = hex32(&e, "final_hash_hex");
        // The published boundaries are 2^256 / difficulty, and the blocks meet them.
        if let Some(difficulty) = e["difficulty"].as_u64() {
            let boundary = DifficultyConvention::Ethash
                .target_for(Difficulty::new(difficulty as f64).expect("difficulty"));
            assert_eq!(boundary.to_be_bytes(), hex32(&e, "boundary_hex"), "{e}");
            let meets = e["meets_boundary"].as_bool().expect("meets_boundary");
            assert_eq!(boundary.is_met_by_be(&final_hash), meets, "{e}");
            let verdict = epochs()
                .verify(
                    DagAlgorithm::Ethash,
                    u64_field(&e, "block_number"),
                    &hex32(&e, "header_hash_hex"),
                    nonce(&e),
                    &hex32(&e, "mix_hash_hex"),
                    &boundary,
                )
                .expect("verify");
            assert_eq!(verdict.is_valid(), meets, "{e}");
        }
    }
}

#[test]
fn ethash_epoch_seeds() {
    for e in entries("ethash.json", "epoch_seed") {
        let epoch = u64_field(&e, "epoch") as u32;
        assert_eq!(epoch_seed(epoch), hex32(&e, "seed_hash_hex"), "{e}");
        assert_eq!(
            EpochParams::new(epoch).expect("params").seed(),
            hex32(&e, "seed_hash_hex")
        );
    }
}

#[test]
fn ethash_epoch_sizes() {
    for e in entries("ethash.json", "epoch_sizes") {
        let params = EpochParams::new(u64_field(&e, "epoch") as u32).expect("params");
        assert_eq!(
            params.light_cache_bytes(),
            u64_field(&e, "light_cache_bytes"),
            "{e}"
        );
        assert_eq!(
            u64::from(params.light_cache_items()),
            u64_field(&e, "light_cache_items_64B"),
            "{e}"
        );
        assert_eq!(
            params.full_dataset_bytes(),
            u64_field(&e, "full_dataset_bytes"),
            "{e}"
        );
        assert_eq!(
            u64::from(params.full_dataset_items()),
            u64_field(&e, "full_dataset_items_128B"),
            "{e}"
        );
    }
    assert_eq!(MAX_EPOCH, 32_639);
    assert!(matches!(
        EpochParams::new(MAX_EPOCH + 1),
        Err(HashError::EpochOutOfRange { .. })
    ));
}

#[test]
fn ethash_light_cache_digests() {
    for e in entries("ethash.json", "light_cache_keccak256") {
        let epoch = u64_field(&e, "epoch") as u32;
        // Built outside the shared cache: epoch 2047's light cache is 284 MiB.
        let context = EpochContext::build(DagAlgorithm::Ethash, epoch).expect("context");
        assert_eq!(
            context.light_cache_digest(),
            hex32(&e, "keccak256_of_whole_light_cache_hex"),
            "{e}"
        );
        assert_eq!(context.memory_bytes(), context.params().light_cache_bytes());
    }
}

#[test]
fn ethash_dataset_items() {
    let items = entries("ethash.json", "dataset_item_1024");
    let epoch = u64_field(&items[0], "epoch") as u32;
    let context = epochs()
        .context(DagAlgorithm::Ethash, epoch)
        .expect("context");
    for e in &items {
        assert_eq!(u64_field(e, "epoch") as u32, epoch);
        let index = u64_field(e, "item_index_1024");
        let first = hex_field(e, "first_512_hex");
        let second = hex_field(e, "second_512_hex");
        let item = context.dataset_item(u32::try_from(index).expect("u32 index"));
        assert_eq!(&item[..64], first.as_slice(), "{e}");
        assert_eq!(&item[64..], second.as_slice(), "{e}");
        assert_eq!(context.dataset_node(2 * index).to_vec(), first, "{e}");
        assert_eq!(context.dataset_node(2 * index + 1).to_vec(), second, "{e}");
    }
}

#[test]
fn kawpow_hashes() {
    for e in entries("kawpow.json", "kawpow_hash") {
        check_hash_entry(DagAlgorithm::KawPow, &e);
    }
}

#[test]
fn kawpow_l1_cache() {
    for e in entries("kawpow.json", "kawpow_l1_cache_prefix") {
        let context = epochs()
            .context(DagAlgorithm::KawPow, u64_field(&e, "epoch") as u32)
            .expect("context");
        let expected: Vec<u32> = e["l1_cache_first_20_u32"]
            .as_array()
            .expect("array")
            .iter()
            .map(|v| v.as_u64().expect("u32") as u32)
            .collect();
        let l1 = context.l1_cache().expect("l1 cache");
        assert_eq!(l1.len(), 4096);
        assert_eq!(&l1[..expected.len()], expected.as_slice());
        assert_eq!(
            context.memory_bytes(),
            context.params().light_cache_bytes() + 16 * 1024
        );
    }
}

/// Light verification holds the light cache and, for KawPow, 16 KiB more: under 64 MiB up to
/// epoch 383 (the cache grows 128 KiB an epoch); no full dataset is built to verify.
#[test]
fn light_verification_memory() {
    const LIMIT: u64 = 64 << 20;
    let bytes = |epoch| EpochParams::new(epoch).expect("params").light_cache_bytes() + 16 * 1024;
    assert!(bytes(383) < LIMIT);
    assert!(bytes(384) >= LIMIT);
    let context = epochs()
        .context(DagAlgorithm::KawPow, 339)
        .expect("epoch 339");
    assert!(context.memory_bytes() < LIMIT, "{}", context.memory_bytes());
    assert!(epochs().cached_datasets().is_empty());
}

#[test]
fn kawpow_epochs() {
    for e in entries("kawpow.json", "kawpow_epoch") {
        let epoch = u64_field(&e, "epoch") as u32;
        for height in [u64_field(&e, "first_block"), u64_field(&e, "last_block")] {
            assert_eq!(
                DagAlgorithm::KawPow.epoch_of(height).ok(),
                Some(epoch),
                "{e}"
            );
        }
        assert_eq!(
            DagAlgorithm::KawPow
                .epoch_of(u64_field(&e, "last_block") + 1)
                .ok(),
            Some(epoch + 1)
        );
        let params = EpochParams::new(epoch).expect("params");
        assert_eq!(params.seed(), hex32(&e, "seed_hash_hex"), "{e}");
        assert_eq!(
            params.light_cache_bytes(),
            u64_field(&e, "light_cache_bytes")
        );
        assert_eq!(
            params.full_dataset_bytes(),
            u64_field(&e, "full_dataset_bytes")
        );
    }
}

#[test]
fn kawpow_does_not_reproduce_progpow_0_9_3() {
    for e in entries("kawpow.json", "contrast_not_kawpow") {
        let height = u64_field(&e, "block_number");
        let header = hex32(&e, "header_hash_hex");
        let context = epochs()
            .context_for_height(DagAlgorithm::KawPow, height)
            .expect("context");
        let out = context.hash(height, &header, nonce(&e)).expect("hash");
        assert_ne!(out.mix, Some(hex32(&e, "mix_hash_hex")), "{e}");
        assert_ne!(out.hash, hex32(&e, "final_hash_hex"), "{e}");
        // Nor does it accept the 0.9.3 solution as a KawPow share.
        let verdict = context
            .verify(
                height,
                &header,
                nonce(&e),
                &hex32(&e, "mix_hash_hex"),
                &Target::MAX,
            )
            .expect("verify");
        assert!(!verdict.is_valid(), "{e}");
    }
}

/// `verify_many` over every hash vector of epoch 0 (KawPow's span three program periods),
/// mixed with forged, failing and wrong-epoch claims: each result matches one-by-one `verify`.
fn check_verify_many(algorithm: DagAlgorithm, file: &str, kind: &str) {
    let context = epochs().context(algorithm, 0).expect("epoch 0");
    let mut claims = Vec::new();
    for e in entries(file, kind) {
        if u64_field(&e, "epoch") != 0 {
            continue;
        }
        let claim = ShareClaim {
            height: u64_field(&e, "block_number"),
            header_hash: hex32(&e, "header_hash_hex"),
            nonce: nonce(&e),
            mix: hex32(&e, "mix_hash_hex"),
            boundary: Target::MAX,
        };
        let mut forged = claim;
        forged.mix[0] ^= 0x80;
        let mut strict = claim;
        strict.boundary = just_below(&hex32(&e, "final_hash_hex"));
        claims.extend([claim, forged, strict]);
    }
    let mut elsewhere = claims[0];
    elsewhere.height += algorithm.epoch_length();
    claims.push(elsewhere);
    assert!(claims.len() >= 8, "{} claims", claims.len());
    let results = context.verify_many(&claims);
    assert_eq!(results.len(), claims.len());
    for (claim, result) in claims.iter().zip(&results) {
        let one = context.verify(
            claim.height,
            &claim.header_hash,
            claim.nonce,
            &claim.mix,
            &claim.boundary,
        );
        match (result, one) {
            (Ok(a), Ok(b)) => assert_eq!(*a, b, "{claim:?}"),
            (Err(HashError::EpochMismatch { .. }), Err(HashError::EpochMismatch { .. })) => {}
            (a, b) => panic!("{claim:?}: batch {a:?}, single {b:?}"),
        }
    }
    let valid = results
        .iter()
        .filter(|r| matches!(r, Ok(v) if v.is_valid()))
        .count();
    assert_eq!(valid * 3 + 1, claims.len());
}

#[test]
fn batch_verification_matches_single() {
    check_verify_many(DagAlgorithm::Ethash, "ethash.json", "ethash_hash");
    check_verify_many(DagAlgorithm::KawPow, "kawpow.json", "kawpow_hash");
}

/// Scans nonces with a worker in verify mode against a loose boundary, and checks that it
/// reports exactly the nonces whose final hash meets it, with the outputs `hash` gives.
fn check_scan(kernel: &dyn PowAlgorithm, header: [u8; 32], nonces: std::ops::Range<u64>) {
    // Difficulty 4: a quarter of the hashes meet it.
    let boundary = DifficultyConvention::Ethash.target_for(Difficulty::new(4.0).expect("d"));
    let job = ScanJob::new(input40(&header, 0), 32, NonceWidth::U64).expect("job");
    let mut worker = kernel.worker().expect("worker");
    let mut found = Vec::new();
    let hashed = worker
        .scan(&job, nonces.clone(), &boundary, &mut found)
        .expect("scan");
    assert_eq!(hashed, nonces.end - nonces.start);
    let mut expected = Vec::new();
    for n in nonces.clone() {
        let out = kernel
            .hash(&job.with_nonce(n).expect("nonce"))
            .expect("hash");
        if boundary.is_met_by_be(&out.hash) {
            expected.push((n, out));
        }
    }
    let got: Vec<_> = found.iter().map(|s| (s.nonce, s.output)).collect();
    assert_eq!(got, expected);
    assert!(!got.is_empty(), "no hit among {} nonces", hashed);
    assert!(got.len() < hashed as usize);
}

#[test]
fn workers_in_verify_mode_find_what_hash_gives() {
    let e = &entries("ethash.json", "ethash_hash")[1];
    let height = u64_field(e, "block_number");
    let header = hex32(e, "header_hash_hex");
    let ethash = Ethash::new(height, epochs()).expect("ethash");
    assert_eq!(ethash.mode(), DagMode::Verify);
    check_scan(&ethash, header, 1_000..1_024);
    // The vector's own nonce is found with the published hashes, at the bound height.
    let n = nonce(e);
    let job = ScanJob::new(input40(&header, n), 32, NonceWidth::U64).expect("job");
    let mut found = Vec::new();
    ethash
        .worker()
        .expect("worker")
        .scan(&job, n..n + 1, &Target::MAX, &mut found)
        .expect("scan");
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].output.hash, hex32(e, "final_hash_hex"));
    assert_eq!(found[0].output.mix, Some(hex32(e, "mix_hash_hex")));

    let e = &entries("kawpow.json", "kawpow_hash")[1];
    let kawpow = KawPow::new(u64_field(e, "block_number"), epochs()).expect("kawpow");
    check_scan(&kawpow, hex32(e, "header_hash_hex"), 0..16);
}

#[test]
fn kernels_follow_their_height() {
    let e0 = &entries("kawpow.json", "kawpow_hash")[0];
    let e1 = &entries("kawpow.json", "kawpow_hash")[1];
    let kernel = KawPow::new(u64_field(e0, "block_number"), epochs()).expect("kawpow");
    let mut worker = kernel.worker().expect("worker");
    kernel
        .set_height(u64_field(e1, "block_number"))
        .expect("set height");
    assert_eq!(kernel.height(), u64_field(e1, "block_number"));
    assert_eq!(kernel.epoch(), 0);
    // The worker created before the move hashes at the new height (a new period).
    let header = hex32(e1, "header_hash_hex");
    let job = ScanJob::new(input40(&header, 0), 32, NonceWidth::U64).expect("job");
    let mut found = Vec::new();
    let n = nonce(e1);
    worker
        .scan(&job, n..n + 1, &Target::MAX, &mut found)
        .expect("scan");
    assert_eq!(found[0].output.mix, Some(hex32(e1, "mix_hash_hex")));
    assert_eq!(
        kernel.hash_header(&header, n).expect("hash").hash,
        hex32(e1, "final_hash_hex")
    );
    let boundary = Target::from_be_bytes(hex32(e1, "final_hash_hex"));
    assert!(kernel
        .verify(&header, n, &hex32(e1, "mix_hash_hex"), &boundary)
        .expect("verify")
        .is_valid());
}

#[test]
fn bad_inputs_are_errors() {
    let kernel = Ethash::new(0, epochs()).expect("ethash");
    assert!(matches!(
        kernel.hash(&[0u8; 39]),
        Err(HashError::HeaderNonceInput { len: 39 })
    ));
    assert!(matches!(
        kernel.hash(&[0u8; 80]),
        Err(HashError::HeaderNonceInput { len: 80 })
    ));
    let mut found = Vec::new();
    let mut worker = kernel.worker().expect("worker");
    assert!(matches!(
        worker.scan(
            &ScanJob::header80([0u8; 80]),
            0..1,
            &Target::MAX,
            &mut found
        ),
        Err(HashError::ScanLayout { len: 80, .. })
    ));
    let wrong_width = ScanJob::new(vec![0u8; 40], 32, NonceWidth::U32).expect("job");
    assert!(matches!(
        worker.scan(&wrong_width, 0..1, &Target::MAX, &mut found),
        Err(HashError::ScanLayout { width: 4, .. })
    ));
    assert!(found.is_empty());

    let context = epochs().context(DagAlgorithm::Ethash, 0).expect("epoch 0");
    assert!(matches!(
        context.hash(30_000, &[0u8; 32], 0),
        Err(HashError::EpochMismatch {
            height_epoch: 1,
            context_epoch: 0,
            ..
        })
    ));
    assert!(matches!(
        Ethash::new(30_000 * (u64::from(MAX_EPOCH) + 1), epochs()),
        Err(HashError::EpochOutOfRange { .. })
    ));
    assert!(matches!(
        epochs().prepare_next(DagAlgorithm::Ethash, MAX_EPOCH),
        Err(HashError::EpochOutOfRange { .. })
    ));
    assert!(matches!(
        DagAlgorithm::try_from(Algorithm::Sha256d),
        Err(HashError::NotDagAlgorithm(Algorithm::Sha256d))
    ));
    assert_eq!(
        DagAlgorithm::try_from(Algorithm::KawPow).ok(),
        Some(DagAlgorithm::KawPow)
    );
}

#[test]
fn epoch_cache_shares_prepares_and_evicts() {
    let cache = EpochCache::new(2);
    assert_eq!(cache.max_epochs(), 2);
    // Two threads asking at once get the one context, built once.
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| cache.context(DagAlgorithm::Ethash, 0).expect("a"));
        let b = s.spawn(|| cache.context(DagAlgorithm::Ethash, 0).expect("b"));
        (a.join().expect("a"), b.join().expect("b"))
    });
    assert!(Arc::ptr_eq(&a, &b));
    // A pool near the end of epoch 0 prepares epoch 1 ahead of the change.
    let next = cache.prepare_next(DagAlgorithm::Ethash, 0).expect("next");
    assert_eq!(next.epoch(), 1);
    assert_eq!(
        cache.cached_epochs(),
        [(DagAlgorithm::Ethash, 0), (DagAlgorithm::Ethash, 1)]
    );
    // After the change both are served without a rebuild.
    let again = cache
        .context_for_height(DagAlgorithm::Ethash, 29_999)
        .expect("epoch 0");
    assert!(Arc::ptr_eq(&again, &a));
    // A third one evicts the least recently used (epoch 1: epoch 0 was just used); KawPow's
    // epoch 0 context reuses Ethash's epoch 0 light cache, so it builds at once.
    let kawpow = cache.context(DagAlgorithm::KawPow, 0).expect("kawpow");
    assert_eq!(kawpow.params(), a.params());
    assert_eq!(
        cache.cached_epochs(),
        [(DagAlgorithm::Ethash, 0), (DagAlgorithm::KawPow, 0)]
    );
    // The evicted context lives on for whoever holds it.
    assert_eq!(next.epoch(), 1);
}

#[test]
fn search_mode_builds_can_be_cancelled() {
    let cache = EpochCache::new(2);
    let cancel = AtomicBool::new(false);
    let reports = AtomicU64::new(0);
    let progress = |done: u64, total: u64| {
        assert!(done <= total && total == 8_388_593);
        reports.fetch_add(1, Ordering::Relaxed);
        cancel.store(true, Ordering::Relaxed);
    };
    let result = Ethash::with_dataset(0, &cache, 2, &progress, &cancel);
    assert!(matches!(result, Err(HashError::Cancelled { epoch: 0, .. })));
    assert!(reports.load(Ordering::Relaxed) >= 1);
    assert!(cache.cached_datasets().is_empty());
    // The light context stayed.
    assert_eq!(cache.cached_epochs(), [(DagAlgorithm::Ethash, 0)]);
}

/// Builds the whole epoch-0 dataset and mines with it: search mode must find exactly what
/// verify mode finds, with the same outputs.
fn full_search_matches_light(algorithm: DagAlgorithm, height: u64) {
    let cache = EpochCache::new(2);
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let never = AtomicBool::new(false);
    let progress = |done: u64, total: u64| {
        if done == total {
            eprintln!("{algorithm} dataset built: {total} items");
        }
    };
    let (search, verify): (Box<dyn PowAlgorithm>, Box<dyn PowAlgorithm>) = match algorithm {
        DagAlgorithm::Ethash => (
            Box::new(Ethash::with_dataset(height, &cache, threads, &progress, &never).expect("d")),
            Box::new(Ethash::new(height, &cache).expect("light")),
        ),
        DagAlgorithm::KawPow => (
            Box::new(KawPow::with_dataset(height, &cache, threads, &progress, &never).expect("d")),
            Box::new(KawPow::new(height, &cache).expect("light")),
        ),
    };
    let header = [0x42u8; 32];
    let boundary = DifficultyConvention::Ethash.target_for(Difficulty::new(4.0).expect("d"));
    let job = ScanJob::new(input40(&header, 0), 32, NonceWidth::U64).expect("job");
    let (mut a, mut b) = (Vec::new(), Vec::new());
    let range = 5_000..5_064;
    search
        .worker()
        .expect("w")
        .scan(&job, range.clone(), &boundary, &mut a)
        .expect("scan");
    verify
        .worker()
        .expect("w")
        .scan(&job, range, &boundary, &mut b)
        .expect("scan");
    assert!(!a.is_empty());
    assert_eq!(a, b);
}

#[test]
#[ignore = "builds the 1 GiB epoch-0 Ethash dataset (about 20 s on two cores in release)"]
fn ethash_full_dataset_search_matches_light() {
    full_search_matches_light(DagAlgorithm::Ethash, 22);
}

#[test]
#[ignore = "builds the 1 GiB epoch-0 KawPow dataset (about 25 s on two cores in release)"]
fn kawpow_full_dataset_search_matches_light() {
    full_search_matches_light(DagAlgorithm::KawPow, 49);
}
