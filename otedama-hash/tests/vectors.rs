//! Every published known-answer vector for SHA256d, scrypt and RandomX (with the `randomx`
//! feature), on every backend this CPU has. The files are copies of the shared vector set; a
//! mismatch anywhere fails.

use otedama_core::{CompactTarget, Target};
use otedama_hash::{
    block_mix, pbkdf2_hmac_sha256, ro_mix, salsa20_8, scrypt, scrypt_1024_1_1, PowAlgorithm,
    ScanJob, Scrypt, ScryptBackend, Sha256d, Sha256dBackend,
};
use serde_json::Value;

fn load(name: &str) -> Vec<Value> {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).expect("vector file");
    serde_json::from_str(&text).expect("vector json")
}

fn hex_field(entry: &Value, key: &str) -> Vec<u8> {
    let s = entry[key]
        .as_str()
        .unwrap_or_else(|| panic!("missing {key} in {entry}"));
    hex::decode(s.trim_start_matches("0x")).expect("hex")
}

fn words_le(bytes: &[u8]) -> Vec<u32> {
    bytes
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

fn bytes_le(words: &[u32]) -> Vec<u8> {
    words.iter().flat_map(|w| w.to_le_bytes()).collect()
}

fn nbits(entry: &Value) -> CompactTarget {
    let field = if entry["nbits"].is_string() {
        &entry["nbits"]
    } else {
        &entry["fields"]["nbits"]
    };
    let s = field.as_str().expect("nbits");
    CompactTarget::from_consensus(
        u32::from_str_radix(s.trim_start_matches("0x"), 16).expect("nbits hex"),
    )
}

/// Scans the eleven nonces centred on the header's own with `kernel`, and checks that the
/// header's nonce is reported with `expected` exactly when it meets `target`.
fn check_scan(
    kernel: &dyn PowAlgorithm,
    header: &[u8],
    expected: &[u8],
    target: &Target,
    meets: bool,
) {
    let header: [u8; 80] = header.try_into().expect("80-byte header");
    let nonce = u64::from(u32::from_le_bytes([
        header[76], header[77], header[78], header[79],
    ]));
    let job = ScanJob::header80(header);
    let lo = nonce.saturating_sub(5);
    let hi = (nonce + 6).min(1 << 32);
    let mut found = Vec::new();
    let mut worker = kernel.worker().expect("worker");
    let hashed = worker.scan(&job, lo..hi, target, &mut found).expect("scan");
    assert_eq!(hashed, hi - lo);
    let hit = found.iter().find(|s| s.nonce == nonce);
    assert_eq!(hit.is_some(), meets, "nonce {nonce} reported {:?}", hit);
    if let Some(hit) = hit {
        assert_eq!(hit.output.hash.as_slice(), expected);
    }
    for s in &found {
        assert!(target.is_met_by(&s.output.hash));
        let input = job.with_nonce(s.nonce).expect("nonce");
        assert_eq!(kernel.hash(&input).expect("hash").hash, s.output.hash);
    }
}

#[test]
fn sha256d_headers_on_every_backend() {
    let mut headers = 0;
    for entry in load("sha256d.json")
        .iter()
        .filter(|e| e["kind"] == "block_header")
    {
        let header = hex_field(entry, "header_hex");
        let internal = hex_field(entry, "sha256d_internal_le_hex");
        let mut display = hex_field(entry, "block_hash_display_be_hex");
        display.reverse();
        assert_eq!(internal, display);
        let target = nbits(entry).decode().expect("valid nbits");
        assert_eq!(
            target.to_be_bytes().to_vec(),
            hex_field(entry, "target_from_nbits_be_hex")
        );
        let meets = entry["meets_target"].as_bool().expect("meets_target");
        for backend in Sha256dBackend::ALL {
            let Ok(kernel) = Sha256d::with_backend(backend) else {
                assert_ne!(backend, Sha256dBackend::Portable, "portable always runs");
                continue;
            };
            assert_eq!(kernel.hash(&header).expect("hash").hash.to_vec(), internal);
            check_scan(&kernel, &header, &internal, &target, meets);
        }
        headers += 1;
    }
    assert!(headers >= 14, "only {headers} header vectors");
}

#[test]
fn scrypt_building_blocks() {
    let entries = load("scrypt.json");
    let mut seen = 0;
    for e in &entries {
        match e["kind"].as_str().expect("kind") {
            "salsa20_8_core" => {
                let mut block: [u32; 16] = words_le(&hex_field(e, "input_hex"))
                    .try_into()
                    .expect("16 words");
                salsa20_8(&mut block);
                assert_eq!(bytes_le(&block), hex_field(e, "output_hex"));
            }
            "scryptBlockMix" => {
                let mut b = words_le(&hex_field(e, "input_hex"));
                let mut scratch = vec![0u32; b.len()];
                block_mix(&mut b, &mut scratch);
                assert_eq!(bytes_le(&b), hex_field(e, "output_hex"));
            }
            "scryptROMix" => {
                let n = e["N"].as_u64().expect("N") as usize;
                let mut b = words_le(&hex_field(e, "input_hex"));
                let mut v = vec![0u32; n * b.len()];
                ro_mix(&mut b, n, &mut v);
                assert_eq!(bytes_le(&b), hex_field(e, "output_hex"));
            }
            "pbkdf2_hmac_sha256" => {
                let mut out = vec![0u8; e["dkLen"].as_u64().expect("dkLen") as usize];
                let iterations = e["iterations"].as_u64().expect("iterations") as u32;
                pbkdf2_hmac_sha256(
                    &hex_field(e, "password_hex"),
                    &hex_field(e, "salt_hex"),
                    iterations,
                    &mut out,
                );
                assert_eq!(out, hex_field(e, "output_hex"));
            }
            "scrypt_kdf" => {
                let out = scrypt(
                    &hex_field(e, "password_hex"),
                    &hex_field(e, "salt_hex"),
                    e["N"].as_u64().expect("N"),
                    e["r"].as_u64().expect("r") as u32,
                    e["p"].as_u64().expect("p") as u32,
                    e["dkLen"].as_u64().expect("dkLen") as usize,
                )
                .expect("valid parameters");
                assert_eq!(out, hex_field(e, "output_hex"), "{e}");
            }
            _ => continue,
        }
        seen += 1;
    }
    assert_eq!(
        seen, 8,
        "every building-block vector ran, the heavy one included"
    );
}

#[test]
fn scrypt_litecoin_headers_on_every_backend() {
    let mut headers = 0;
    for e in load("scrypt.json")
        .iter()
        .filter(|e| e["kind"] == "litecoin_pow")
    {
        let header = hex_field(e, "header_hex");
        let internal = hex_field(e, "pow_hash_internal_le_hex");
        let mut display = hex_field(e, "pow_hash_display_be_hex");
        display.reverse();
        assert_eq!(internal, display);
        assert_eq!(scrypt_1024_1_1(&header).to_vec(), internal);
        let mut id = hex_field(e, "block_id_sha256d_display_be_hex");
        id.reverse();
        assert_eq!(otedama_hash::sha256d(&header).to_vec(), id);
        let target = nbits(e).decode().expect("valid nbits");
        assert_eq!(
            target.to_be_bytes().to_vec(),
            hex_field(e, "target_from_nbits_be_hex")
        );
        let meets = e["meets_target"].as_bool().expect("meets_target");
        assert_eq!(
            target.is_met_by(&internal.clone().try_into().expect("32")),
            meets
        );
        for backend in ScryptBackend::ALL {
            let Ok(kernel) = Scrypt::with_backend(backend) else {
                continue;
            };
            check_scan(&kernel, &header, &internal, &target, meets);
        }
        headers += 1;
    }
    assert_eq!(headers, 5);
}

#[test]
fn scrypt_rejects_forbidden_parameters() {
    assert!(scrypt(b"p", b"s", 1000, 1, 1, 32).is_err());
    assert!(scrypt(b"p", b"s", 0, 1, 1, 32).is_err());
    assert!(scrypt(b"p", b"s", 1024, 0, 1, 32).is_err());
    assert!(scrypt(b"p", b"s", 1 << 40, 8, 1, 32).is_err());
}

/// RandomX rx/0 on the reference library: light-mode hashes, the commitment, dataset items,
/// and fast mode mining what light mode verifies.
#[cfg(feature = "randomx")]
mod randomx {
    use super::*;
    use otedama_hash::{randomx_commitment, DatasetPages, RandomX, RandomXMode};

    fn randomx_entries() -> Vec<Value> {
        load("randomx.json")
    }

    #[test]
    fn randomx_light_mode_hashes() {
        let entries = randomx_entries();
        let mut kernel: Option<RandomX> = None;
        let mut v1 = 0;
        let mut v2 = 0;
        for e in entries.iter().filter(|e| e["kind"] == "randomx_hash") {
            let key = hex_field(e, "key_hex");
            match &kernel {
                Some(k) => k.set_key(&key).expect("rekey"),
                None => kernel = Some(RandomX::new(&key, RandomXMode::Light, 1).expect("light")),
            }
            let k = kernel.as_ref().expect("kernel");
            assert_eq!(k.key(), key);
            let hash = k
                .hash(&hex_field(e, "input_hex"))
                .expect("hash")
                .hash
                .to_vec();
            let expected = hex_field(e, "hash_hex");
            if e["variant"].as_str().expect("variant").contains("v2") {
                // RandomX v2 is a later revision, not rx/0: rx/0 must not produce its hashes.
                assert_ne!(hash, expected, "{}", e["test_name"]);
                v2 += 1;
            } else {
                assert_eq!(hash, expected, "{}", e["test_name"]);
                v1 += 1;
            }
        }
        assert!(v1 >= 4 && v2 >= 1, "v1 {v1} v2 {v2}");
    }

    #[test]
    fn randomx_commitment_and_dataset_items() {
        let entries = randomx_entries();
        for e in entries.iter().filter(|e| e["kind"] == "randomx_commitment") {
            let hash: [u8; 32] = hex_field(e, "hash_hex").try_into().expect("32");
            assert_eq!(
                randomx_commitment(&hex_field(e, "input_hex"), &hash).to_vec(),
                hex_field(e, "commitment_hex")
            );
        }
        let kernel = RandomX::new(b"test key 000", RandomXMode::Light, 1).expect("light");
        let mut items = 0;
        for e in entries.iter().filter(|e| e["kind"] == "dataset_item_u64_0") {
            assert_eq!(e["key_ascii"], "test key 000");
            let index = e["dataset_item_index"].as_u64().expect("index");
            let item = kernel.dataset_item(index).expect("item");
            let first = u64::from_le_bytes(item[..8].try_into().expect("8"));
            let expected = u64::from_str_radix(
                e["first_u64_hex"]
                    .as_str()
                    .expect("hex")
                    .trim_start_matches("0x"),
                16,
            )
            .expect("u64");
            assert_eq!(first, expected, "item {index}");
            items += 1;
        }
        assert_eq!(items, 3);
        assert!(kernel.dataset_item(u64::MAX).is_err());
    }

    #[test]
    fn randomx_fast_mode_mines_what_light_mode_verifies() {
        let entries = randomx_entries();
        let e = entries
            .iter()
            .find(|e| e["kind"] == "randomx_hash" && e["test_name"] == "Hash test 1a")
            .expect("vector 1a");
        let key = hex_field(e, "key_hex");
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        // Where the host reserves no huge pages at all, the dataset can only get transparent
        // ones (when the kernel offers them) or small ones; read before the dataset takes any.
        let sysfs = |path: &str| std::fs::read_to_string(path).unwrap_or_default();
        let thp = sysfs("/sys/kernel/mm/transparent_hugepage/enabled");
        let thp_on = thp.contains("[always]") || thp.contains("[madvise]");
        let none_reserved = sysfs("/proc/sys/vm/nr_hugepages").trim() == "0"
            && sysfs("/proc/sys/vm/nr_overcommit_hugepages").trim() == "0";
        let fast = RandomX::new(&key, RandomXMode::Fast, threads).expect("fast mode (2 GiB)");
        assert_ne!(fast.dataset_pages(), DatasetPages::None);
        if cfg!(target_os = "linux") && none_reserved {
            let expected = if thp_on {
                DatasetPages::Transparent
            } else {
                DatasetPages::Standard
            };
            assert_eq!(
                fast.dataset_pages(),
                expected,
                "transparent huge pages: {thp:?}"
            );
        }
        assert_eq!(
            fast.hash(&hex_field(e, "input_hex"))
                .expect("hash")
                .hash
                .to_vec(),
            hex_field(e, "hash_hex")
        );
        // A 76-byte blob with its nonce at 39, as Monero's hashing blob has.
        let blob: Vec<u8> = (0..76u8).collect();
        let job = ScanJob::monero_blob(blob).expect("blob");
        let mut worker = fast.worker().expect("worker");
        let mut found = Vec::new();
        let mut loose = [0xffu8; 32];
        loose[31] = 0x3f;
        let target = Target::from_le_bytes(loose);
        let hashed = worker
            .scan(&job, 1000..1040, &target, &mut found)
            .expect("scan");
        assert_eq!(hashed, 40);
        assert!(
            !found.is_empty() && found.len() < 40,
            "{} of 40 met a 1/4 target",
            found.len()
        );
        let light = RandomX::new(&key, RandomXMode::Light, 1).expect("light");
        assert_eq!(light.dataset_pages(), DatasetPages::None);
        for s in &found {
            let input = job.with_nonce(s.nonce).expect("nonce");
            assert_eq!(light.hash(&input).expect("hash"), s.output);
            assert!(target.is_met_by(&s.output.hash));
        }
    }
}
