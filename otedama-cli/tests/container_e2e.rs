//! The deployment files, tested where they can be here: the `Dockerfile` builds an image (on a
//! Debian base made locally with debootstrap, as no registry is reachable) whose pool, run as a
//! non-root user with its configuration and data where the Dockerfile says, answers a miner
//! and reports healthy; the production compose file and the Kubernetes manifests validate,
//! and the configuration they carry loads.
//!
//! Needs Docker (with `debootstrap` to make the base image once), `docker-compose` and
//! `kubernetes-validate` (PyPI). Without them the tests fail on CI and are skipped elsewhere.

mod support;

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use support::pool::bin;

/// The base image the test makes when it is missing.
const BASE: &str = "otedama-base:bookworm";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the workspace")
        .to_owned()
}

fn on_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true")
}

fn run(program: &str, args: &[&str]) -> Output {
    Command::new(program)
        .args(args)
        .current_dir(root())
        .output()
        .unwrap_or_else(|e| panic!("{program}: {e}"))
}

fn ok(out: &Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).to_string()
}

/// Whether `program` runs (with `probe`) at all; on CI it must.
fn have(program: &str, probe: &[&str]) -> bool {
    let there = Command::new(program)
        .args(probe)
        .output()
        .is_ok_and(|o| o.status.success());
    if !there {
        assert!(
            !on_ci(),
            "{program} is missing on CI: .ci/run must install it"
        );
        eprintln!("{program} is not available here: skipped");
    }
    there
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// Makes the Debian base image from the Debian mirror, once.
fn ensure_base() {
    if run("docker", &["image", "inspect", BASE]).status.success() {
        return;
    }
    let dir = std::env::temp_dir().join(format!("otedama-rootfs-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let dir_arg = dir.to_str().expect("utf-8");
    ok(
        &run("debootstrap", &["--variant=minbase", "bookworm", dir_arg]),
        "debootstrap",
    );
    let import = Command::new("sh")
        .args([
            "-c",
            &format!("tar -C '{dir_arg}' -c . | docker import - {BASE}"),
        ])
        .output()
        .expect("docker import");
    ok(&import, "docker import");
    let _ = std::fs::remove_dir_all(&dir);
}

/// Removes the container and the image at the end, also when the test fails.
struct Cleanup {
    container: String,
    image: String,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let _ = run("docker", &["rm", "-f", &self.container]);
        let _ = run("docker", &["rmi", "-f", &self.image]);
    }
}

#[test]
fn the_image_runs_a_pool_that_answers_a_miner_and_reports_healthy() {
    if !have("docker", &["info"]) {
        return;
    }
    ensure_base();
    // The image packs this test's own build of the binary (the Dockerfile's prebuilt stage).
    let binary = Path::new(bin())
        .strip_prefix(root())
        .expect("the binary inside the workspace")
        .to_str()
        .expect("utf-8")
        .to_owned();
    let tag = format!("otedama:test-{}", std::process::id());
    let cleanup = Cleanup {
        container: format!("otedama-test-{}", std::process::id()),
        image: tag.clone(),
    };
    // The classic builder: it needs no buildx, and stops at the target stage.
    let build = Command::new("docker")
        .env("DOCKER_BUILDKIT", "0")
        .args([
            "build",
            "--target",
            "prebuilt",
            "--build-arg",
            &format!("RUNTIME={BASE}"),
            "--build-arg",
            &format!("BINARY={binary}"),
            "-t",
            &tag,
            ".",
        ])
        .current_dir(root())
        .output()
        .expect("docker build");
    ok(&build, "docker build");

    let dir = std::env::temp_dir().join(format!("otedama-container-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let config = dir.join("config.yaml");
    std::fs::write(
        &config,
        "app:\n  mode: development\nmining:\n  enable_cpu: false\npool:\n  address: \"0.0.0.0:3333\"\n  difficulty: 0.0005\napi:\n  enable: true\n  address: \"0.0.0.0:8080\"\nmonitoring:\n  metrics: { enabled: true }\n  health: { enabled: true, address: \"0.0.0.0:8081\" }\n",
    )
    .expect("config");
    let (stratum, api) = (free_port(), free_port());
    let mount = format!(
        "{}:/app/config/config.yaml:ro",
        config.to_str().expect("utf-8")
    );
    let started = run(
        "docker",
        &[
            "run",
            "-d",
            "--name",
            &cleanup.container,
            "--health-interval",
            "1s",
            "--health-start-period",
            "1s",
            "-p",
            &format!("127.0.0.1:{stratum}:3333"),
            "-p",
            &format!("127.0.0.1:{api}:8080"),
            "-v",
            &mount,
            &tag,
        ],
    );
    ok(&started, "docker run");

    // The Dockerfile's health check (`otedama-cli status --ready` on the health port).
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let health = run(
            "docker",
            &[
                "inspect",
                "--format",
                "{{.State.Health.Status}}",
                &cleanup.container,
            ],
        );
        let status = ok(&health, "docker inspect").trim().to_owned();
        if status == "healthy" {
            break;
        }
        let logs = run("docker", &["logs", &cleanup.container]);
        assert!(
            Instant::now() < deadline,
            "not healthy ({status}): {}{}",
            String::from_utf8_lossy(&logs.stdout),
            String::from_utf8_lossy(&logs.stderr)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let uid = ok(
        &run("docker", &["exec", &cleanup.container, "id", "-u"]),
        "id",
    );
    assert_ne!(uid.trim(), "0", "the pool runs as root");

    // A miner outside the container mines on the pool inside.
    let mined = Command::new(bin())
        .args([
            "mine",
            "-o",
            &format!("stratum+tcp://127.0.0.1:{stratum}"),
            "-u",
            "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqdku202.container",
            "--algo",
            "sha256d",
            "--threads",
            "1",
            "--max-shares",
            "3",
            "--seconds",
            "120",
        ])
        .output()
        .expect("mine");
    let err = String::from_utf8_lossy(&mined.stderr);
    assert!(mined.status.success(), "{err}");
    assert!(err.contains("done: 3 accepted"), "{err}");
    // Its shares are in the data volume's database.
    let data = ok(
        &run("docker", &["exec", &cleanup.container, "ls", "/app/data"]),
        "ls",
    );
    assert!(data.contains("otedama.db"), "{data}");
    let status = Command::new(bin())
        .args([
            "status",
            "--url",
            &format!("http://127.0.0.1:{api}"),
            "--json",
        ])
        .output()
        .expect("status");
    let text = ok(&status, "status");
    assert!(text.contains("\"role\": \"pool\""), "{text}");
    drop(cleanup);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_compose_file_and_the_kubernetes_manifests_validate() {
    // The configuration they carry loads, and the ConfigMap carries the same file.
    let config = root().join("deploy/config.production.yaml");
    let printed = Command::new(bin())
        .args([
            "serve",
            "--config",
            config.to_str().expect("utf-8"),
            "--print-config",
        ])
        .output()
        .expect("print-config");
    ok(&printed, "the production configuration");
    let file = std::fs::read_to_string(&config).expect("config");
    let map = std::fs::read_to_string(root().join("deploy/k8s/configmap.yaml")).expect("map");
    for line in file.lines().filter(|l| !l.trim().is_empty()) {
        assert!(
            map.contains(&format!("    {line}")),
            "the ConfigMap lacks {line:?}: keep it equal to deploy/config.production.yaml"
        );
    }
    if have("docker-compose", &["version"]) {
        ok(
            &run(
                "docker-compose",
                &["-f", "docker-compose.production.yml", "config", "-q"],
            ),
            "docker-compose config",
        );
    }
    if have("python3", &["-m", "kubernetes_validate", "--version"]) {
        let manifests: Vec<String> = std::fs::read_dir(root().join("deploy/k8s"))
            .expect("deploy/k8s")
            .map(|e| e.expect("entry").path().display().to_string())
            .filter(|p| p.ends_with(".yaml"))
            .collect();
        assert!(manifests.len() >= 5, "{manifests:?}");
        let mut args = vec!["-m", "kubernetes_validate", "--strict"];
        args.extend(manifests.iter().map(String::as_str));
        let out = run("python3", &args);
        let text = ok(&out, "kubernetes-validate");
        for kind in [
            "namespace/otedama",
            "configmap/otedama-config",
            "secret/otedama-database",
            "deployment/otedama",
            "service/otedama-stratum",
            "service/otedama-api",
            "horizontalpodautoscaler/otedama",
            "poddisruptionbudget/otedama",
        ] {
            let all = format!("{text}{}", String::from_utf8_lossy(&out.stderr));
            assert!(
                all.contains(&format!("passed for resource {kind}")),
                "{kind}: {all}"
            );
        }
    }
}
