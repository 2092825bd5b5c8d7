//! Search-path checks that need the internals: a partially built dataset must give exactly the
//! items the light cache gives, and dataset builds must report progress and stop when told.
//! The published vectors are checked through the public API in `tests/ethash_vectors.rs`.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use super::dag::{EpochContext, FullDataset, FullLookup, LightLookup};
use super::epoch::DagAlgorithm;
use super::node::{Lookup, NodeBackend};
use super::progpow::Program;
use super::{ethash, kawpow, simd};
use crate::HashError;

/// Epoch 0's contexts, built once for the whole module (they share one light cache).
fn contexts() -> &'static (Arc<EpochContext>, Arc<EpochContext>) {
    static CONTEXTS: OnceLock<(Arc<EpochContext>, Arc<EpochContext>)> = OnceLock::new();
    CONTEXTS.get_or_init(|| {
        let ethash = EpochContext::build(DagAlgorithm::Ethash, 0).expect("epoch 0");
        let kawpow = EpochContext::from_light(DagAlgorithm::KawPow, Arc::clone(ethash.light()));
        (Arc::new(ethash), Arc::new(kawpow))
    })
}

/// Items of a dataset prefix built here (a few seconds' worth at test optimisation).
const PREFIX: u32 = 1024;

fn prefix(context: &Arc<EpochContext>, threads: usize) -> FullDataset {
    let reports = AtomicU64::new(0);
    let last = AtomicU64::new(0);
    let progress = |done: u64, total: u64| {
        assert_eq!(total, u64::from(PREFIX));
        assert!(done <= total);
        reports.fetch_add(1, Ordering::Relaxed);
        last.fetch_max(done, Ordering::Relaxed);
    };
    let never = AtomicBool::new(false);
    let dataset =
        FullDataset::build_prefix(Arc::clone(context), PREFIX, threads, &progress, &never)
            .expect("prefix");
    assert_eq!(dataset.items_built(), PREFIX as usize);
    assert!(reports.load(Ordering::Relaxed) >= 1);
    assert_eq!(last.load(Ordering::Relaxed), u64::from(PREFIX));
    dataset
}

#[test]
fn built_ethash_items_agree_with_light_items() {
    let (ethash_context, _) = contexts();
    let dataset = prefix(ethash_context, 2);
    let full = FullLookup::new(&dataset);
    let light = LightLookup::new(ethash_context);
    // Every item of the prefix, and some past it (served from the light cache).
    for index in (0..PREFIX).chain([PREFIX, PREFIX + 1, 8_388_592]) {
        assert_eq!(
            full.item_1024(index),
            light.item_1024(index),
            "item {index}"
        );
    }
    for index in [0, 1, PREFIX / 2 - 1, PREFIX / 2, 4_194_295] {
        assert_eq!(
            full.item_2048(index),
            light.item_2048(index),
            "item {index}"
        );
    }
    // The items also agree with the public one-item accessor.
    let bytes = ethash_context.dataset_item(5);
    let words: Vec<u8> = full
        .item_1024(5)
        .iter()
        .flat_map(|w| w.to_le_bytes())
        .collect();
    assert_eq!(bytes.to_vec(), words);
    // And a hash through the dataset equals the light hash.
    let header = [0x5au8; 32];
    for nonce in 0..3 {
        let a = ethash::hash(&full, ethash_context.items_1024(), &header, nonce);
        let b = ethash::hash(&light, ethash_context.items_1024(), &header, nonce);
        assert_eq!(a, b);
    }
}

#[test]
fn built_kawpow_items_agree_with_light_items() {
    let (_, kawpow_context) = contexts();
    let dataset = prefix(kawpow_context, 1);
    let full = FullLookup::new(&dataset);
    let light = LightLookup::new(kawpow_context);
    for index in (0..PREFIX / 2)
        .step_by(7)
        .chain([PREFIX / 2 - 1, PREFIX / 2])
    {
        assert_eq!(
            full.item_2048(index),
            light.item_2048(index),
            "item {index}"
        );
    }
    for index in (0..PREFIX).step_by(13).chain([PREFIX - 1, PREFIX]) {
        assert_eq!(
            full.item_1024(index),
            light.item_1024(index),
            "item {index}"
        );
    }
    // The L1 cache is the first 16 KiB of this same dataset.
    let l1 = kawpow_context.l1_cache().expect("kawpow has an l1 cache");
    for (index, chunk) in l1.chunks_exact(64).enumerate() {
        assert_eq!(chunk, full.item_2048(index as u32).as_slice());
    }
    let l1 = kawpow_context.l1();
    let program = Program::generate(5);
    let header = [0xa5u8; 32];
    let a = kawpow::hash(&program, l1, &full, kawpow_context.items_2048(), &header, 9);
    let b = kawpow::hash(
        &program,
        l1,
        &light,
        kawpow_context.items_2048(),
        &header,
        9,
    );
    assert_eq!(a, b);
}

#[test]
fn dataset_builds_stop_when_cancelled() {
    let (ethash_context, _) = contexts();
    // Cancelled before it starts.
    let cancel = AtomicBool::new(true);
    let result = FullDataset::build_prefix(Arc::clone(ethash_context), 64, 2, &|_, _| {}, &cancel);
    assert!(matches!(result, Err(HashError::Cancelled { epoch: 0, .. })));
    // Cancelled from the first progress report, in the middle of a whole-dataset build: the
    // rest of the gigabyte is never computed.
    let cancel = AtomicBool::new(false);
    let reports = AtomicU64::new(0);
    let progress = |done: u64, _total: u64| {
        assert!(done > 0);
        reports.fetch_add(1, Ordering::Relaxed);
        cancel.store(true, Ordering::Relaxed);
    };
    let result = FullDataset::build(Arc::clone(ethash_context), 2, &progress, &cancel);
    assert!(matches!(result, Err(HashError::Cancelled { .. })));
    // At most one chunk per thread finished after the flag was set.
    assert!(reports.load(Ordering::Relaxed) <= 2);
}

#[test]
fn node_backends_agree() {
    let (ethash_context, _) = contexts();
    let cache = ethash_context.light();
    let backends = [NodeBackend::Portable, NodeBackend::detect()];
    for parents in [256, 512] {
        let indices = [0u64, 1, 2, 3, 999_999, 4_294_967_295, 17_000_000, 12];
        let reference = cache.dataset_nodes(indices, parents);
        for backend in backends {
            assert_eq!(
                simd::dataset_nodes(backend, cache, indices, parents),
                reference,
                "{backend:?}"
            );
            let [one] = simd::dataset_nodes(backend, cache, [indices[4]], parents);
            assert_eq!(one, reference[4], "{backend:?}");
        }
    }
}

#[test]
fn progpow_backends_agree() {
    use super::node::Node;
    /// Items made up from their index: enough to drive the mix through every operation.
    struct MadeUp;
    impl Lookup for MadeUp {
        fn nodes<const N: usize>(&self, indices: [u64; N]) -> [Node; N] {
            indices.map(|i| {
                Node(std::array::from_fn(|w| {
                    (i as u32 ^ 0x9e37_79b9).rotate_left(w as u32)
                }))
            })
        }

        fn backend(&self) -> NodeBackend {
            NodeBackend::Portable
        }
    }
    let (_, kawpow_context) = contexts();
    let items = kawpow_context.items_2048();
    for period in [0u64, 1, 16, 9_999_999] {
        let a = Program::generate(period);
        let b = Program::generate(period + 1);
        let seeds = [[period as u32, 7], [3, period as u32]];
        let portable = simd::progpow_mixes::<_, 2, 8>(
            NodeBackend::Portable,
            seeds,
            [&a, &b],
            kawpow_context.l1(),
            &MadeUp,
            items,
        );
        let detected = simd::progpow_mixes::<_, 2, 8>(
            NodeBackend::detect(),
            seeds,
            [&a, &b],
            kawpow_context.l1(),
            &MadeUp,
            items,
        );
        assert_eq!(portable, detected, "period {period}");
    }
}

#[test]
fn portable_backend_reproduces_published_hashes() {
    let (ethash_context, _) = contexts();
    let portable = Arc::new(ethash_context.light().on_backend(NodeBackend::Portable));
    let ethash_context = EpochContext::from_light(DagAlgorithm::Ethash, Arc::clone(&portable));
    let kawpow_context = EpochContext::from_light(DagAlgorithm::KawPow, portable);
    let hex32 = |s: &str| -> [u8; 32] {
        let bytes: Vec<u8> = (0..32)
            .map(|i| u8::from_str_radix(&s[2 * i..2 * i + 2], 16).expect("hex"))
            .collect();
        bytes.try_into().expect("32 bytes")
    };
    // ethash.json, block 0; kawpow.json, block 0.
    let out = ethash_context
        .hash(
            0,
            &hex32("2a8de2adf89af77358250bf908bf04ba94a6e8c3ba87775564a41d269a05e4ce"),
            0x4242_4242_4242_4242,
        )
        .expect("ethash");
    assert_eq!(
        out.mix,
        Some(hex32(
            "58f759ede17a706c93f13030328bcea40c1d1341fb26f2facd21ceb0dae57017"
        ))
    );
    assert_eq!(
        out.hash,
        hex32("dd47fd2d98db51078356852d7c4014e6a5d6c387c35f40e2875b74a256ed7906")
    );
    // A dataset prefix built on the portable path holds the items of the detected one.
    let never = AtomicBool::new(false);
    let ethash_context = Arc::new(ethash_context);
    let built = FullDataset::build_prefix(Arc::clone(&ethash_context), 37, 2, &|_, _| {}, &never)
        .expect("prefix");
    let full = FullLookup::new(&built);
    let (detected, _) = contexts();
    for index in 0..37 {
        let words: Vec<u8> = full
            .item_1024(index)
            .iter()
            .flat_map(|w| w.to_le_bytes())
            .collect();
        assert_eq!(words, detected.dataset_item(index).to_vec(), "item {index}");
    }
    let out = kawpow_context.hash(0, &[0u8; 32], 0).expect("kawpow");
    assert_eq!(
        out.mix,
        Some(hex32(
            "6e97b47b134fda0c7888802988e1a373affeb28bcd813b6e9a0fc669c935d03a"
        ))
    );
    assert_eq!(
        out.hash,
        hex32("e601a7257a70dc48fccc97a7330d704d776047623b92883d77111fb36870f3d1")
    );
}
