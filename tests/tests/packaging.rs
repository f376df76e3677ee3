//! Packaging (issue 13): the Dockerfile, the Helm chart under deploy/helm/sts and the systemd unit under
//! deploy/systemd, checked with the real tools an operator's CI would use: hadolint, helm (lint and
//! template), kubernetes-validate (the Kubernetes OpenAPI schemas, strict), systemd-analyze (verify and the
//! offline security score). The chart's rendered configuration is then run for real: two `sts serve`
//! processes with exactly the Deployment's environment and ConfigMap, on the suite's PostgreSQL, from a
//! read-only working directory, answering the probes the Deployment names. No container runtime runs
//! here (no registry to pull base images from), so the image itself is checked by what it must contain:
//! every shared library the `sts` binary needs comes from a package the runtime stage installs.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;
use sts_tests::{repo_root, sts_bin};

fn venv_tool(name: &str) -> String {
    let p = repo_root().join("tests/peers/.venv/bin").join(name);
    assert!(
        p.is_file(),
        "{} missing: run scripts/install-deps --peers (tests/peers/requirements.txt)",
        p.display()
    );
    p.display().to_string()
}

fn run(program: &str, args: &[&str]) -> (bool, String) {
    let out = Command::new(program)
        .args(args)
        .current_dir(repo_root())
        .output()
        .unwrap_or_else(|e| panic!("{program} does not run ({e}); scripts/install-deps --peers"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

// ---------------------------------------------------------------------------------------------------
// Dockerfile

/// The stages of a Dockerfile: (FROM line, the package names its `apt-get install` lines name).
fn stages(dockerfile: &str) -> Vec<(String, BTreeSet<String>)> {
    // Join continuation lines first.
    let joined = dockerfile.replace("\\\n", " ");
    let mut out: Vec<(String, BTreeSet<String>)> = Vec::new();
    for line in joined.lines().map(str::trim) {
        if line.starts_with("FROM ") {
            out.push((line.to_string(), BTreeSet::new()));
        } else if let Some(pos) = line.find("apt-get install") {
            let rest = &line[pos + "apt-get install".len()..];
            let cmd = rest.split("&&").next().unwrap();
            let pkgs = cmd
                .split_whitespace()
                .filter(|w| !w.starts_with('-'))
                .map(str::to_string);
            out.last_mut().expect("FROM first").1.extend(pkgs);
        }
    }
    out
}

/// The Debian package that ships a shared library the binary needs (`readelf -d` NEEDED, resolved by
/// `ldd`, owned per `dpkg -S`).
fn needed_packages(binary: &Path) -> BTreeMap<String, String> {
    let (ok, readelf) = run("readelf", &["-d", &binary.display().to_string()]);
    assert!(ok, "readelf: {readelf}");
    let needed: Vec<String> = readelf
        .lines()
        .filter(|l| l.contains("(NEEDED)"))
        .filter_map(|l| Some(l.split('[').nth(1)?.trim_end_matches(']').to_string()))
        .collect();
    assert!(
        needed.iter().any(|n| n.starts_with("libxmlsec1")),
        "the binary links libxmlsec1 (samael): {needed:?}"
    );
    let (ok, ldd) = run("ldd", &[&binary.display().to_string()]);
    assert!(ok, "ldd: {ldd}");
    let mut owners = BTreeMap::new();
    for lib in needed {
        let path = ldd
            .lines()
            .find_map(|l| {
                let (name, rest) = l.trim().split_once(" => ")?;
                (name == lib).then(|| rest.split(" (").next().unwrap().trim().to_string())
            })
            .or_else(|| {
                // The dynamic loader is listed by its path.
                ldd.lines()
                    .map(str::trim)
                    .find(|l| l.starts_with('/') && l.contains(&lib))
                    .map(|l| l.split(" (").next().unwrap().to_string())
            })
            .unwrap_or_else(|| panic!("ldd does not resolve {lib}:\n{ldd}"));
        // dpkg knows files by the path the package installed (/lib is a symlink to /usr/lib on
        // merged-/usr systems, either may be recorded).
        let candidates = [path.clone(), path.replacen("/lib", "/usr/lib", 1)];
        let pkg = candidates
            .iter()
            .find_map(|p| {
                let (ok, out) = run("dpkg", &["-S", p]);
                ok.then(|| out.split(':').next().unwrap().trim().to_string())
            })
            .unwrap_or_else(|| panic!("no Debian package owns {path}"));
        owners.insert(lib, pkg);
    }
    owners
}

#[test]
fn dockerfile_lints_clean_is_multi_stage_non_root_and_ships_every_library_the_binary_needs() {
    let root = repo_root();
    let dockerfile = std::fs::read_to_string(root.join("Dockerfile")).unwrap();
    let hadolint = venv_tool("hadolint");

    let (ok, out) = run(&hadolint, &["--no-color", "Dockerfile"]);
    assert!(ok, "hadolint finds problems in the Dockerfile:\n{out}");
    // The linter is live: the same file running as root is refused.
    let dir = tempfile::tempdir().unwrap();
    let rooted = dir.path().join("Dockerfile");
    std::fs::write(&rooted, dockerfile.replace("USER 10001:10001", "USER root")).unwrap();
    let (ok, out) = run(&hadolint, &["--no-color", &rooted.display().to_string()]);
    assert!(
        !ok && out.contains("DL3002"),
        "hadolint must refuse USER root: {out}"
    );

    // Two stages on the same Debian release: the build links the libraries the runtime installs.
    let stages = stages(&dockerfile);
    assert_eq!(stages.len(), 2, "build and runtime stages: {stages:?}");
    let (build_from, build_pkgs) = &stages[0];
    let (run_from, run_pkgs) = &stages[1];
    assert!(
        build_from.contains("bookworm") && run_from.contains("bookworm-slim"),
        "{stages:?}"
    );
    assert!(build_from.ends_with(" AS build"), "{build_from}");

    // The build stage installs what scripts/install-deps installs to build here.
    let install_deps = std::fs::read_to_string(root.join("scripts/install-deps")).unwrap();
    let line = install_deps
        .lines()
        .find(|l| l.starts_with("for p in build-essential"))
        .expect("install-deps lists the build prerequisites");
    for p in line
        .trim_start_matches("for p in ")
        .trim_end_matches("; do")
        .split_whitespace()
    {
        assert!(
            build_pkgs.contains(p),
            "the build stage lacks {p}: {build_pkgs:?}"
        );
    }

    // The runtime stage: no development packages, and each library the binary needs comes from one of its
    // packages or from the base image's own C runtime.
    assert!(
        run_pkgs
            .iter()
            .all(|p| !p.ends_with("-dev") && p != "build-essential"),
        "{run_pkgs:?}"
    );
    assert!(run_pkgs.contains("ca-certificates"), "{run_pkgs:?}");
    let base: BTreeSet<&str> = ["libc6", "libgcc-s1"].into();
    let owners = needed_packages(&sts_bin());
    for (lib, pkg) in &owners {
        assert!(
            run_pkgs.contains(pkg) || base.contains(pkg.as_str()),
            "the binary needs {lib} from {pkg}, which the runtime stage does not install: {run_pkgs:?}"
        );
    }

    // Non-root at the end, with a numeric uid (runAsNonRoot can check it), exec-form entrypoint.
    let last_user = dockerfile
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .expect("a USER line");
    let uid: u32 = last_user
        .split(':')
        .next()
        .unwrap()
        .parse()
        .expect("numeric uid");
    assert_ne!(uid, 0);
    assert!(dockerfile.contains("ENTRYPOINT [\"/usr/local/bin/sts\"]"));
    let ignore = std::fs::read_to_string(root.join(".dockerignore")).unwrap();
    for p in ["target", "keys", "data", ".git"] {
        assert!(
            ignore.lines().any(|l| l == p),
            ".dockerignore keeps {p} out of the image"
        );
    }
}

// ---------------------------------------------------------------------------------------------------
// Helm chart

const CHART: &str = "deploy/helm/sts";

fn helm_template(sets: &[&str]) -> (bool, String) {
    let helm = venv_tool("helm");
    let mut args = vec!["template", "sts", CHART];
    for s in sets {
        args.push("--set");
        args.push(s);
    }
    run(&helm, &args)
}

const REQUIRED: [&str; 3] = [
    "publicUrl=https://sts.example.com",
    "secrets.masterKey.name=sts-master-key",
    "secrets.databaseUrl.name=sts-database",
];

/// Rendered manifests as JSON values (through PyYAML in the peers' venv, the parser kubernetes-validate
/// uses too).
fn parse(manifests: &str) -> Vec<Value> {
    let out = sts_tests::run_with_stdin(
        Command::new(venv_tool("python")).args([
            "-c",
            "import sys, json, yaml; print(json.dumps([d for d in yaml.safe_load_all(sys.stdin) if d]))",
        ]),
        manifests.as_bytes(),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn kind<'a>(docs: &'a [Value], kind: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind)
}

fn validate(manifests: &str) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("rendered.yaml");
    std::fs::write(&file, manifests).unwrap();
    let (ok, out) = run(
        &venv_tool("kubernetes-validate"),
        &["--strict", "-k", "1.31.0", &file.display().to_string()],
    );
    assert!(
        ok,
        "kubernetes-validate refuses the rendered chart:\n{out}\n{manifests}"
    );
    assert!(!out.contains("WARN"), "{out}");
}

fn env_of(container: &Value) -> BTreeMap<String, Value> {
    container["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| (e["name"].as_str().unwrap().to_string(), e.clone()))
        .collect()
}

#[test]
fn helm_chart_lints_renders_valid_manifests_and_is_hardened() {
    let (ok, out) = run(
        &venv_tool("helm"),
        &[
            "lint",
            "--strict",
            CHART,
            "--set",
            REQUIRED[0],
            "--set",
            REQUIRED[1],
            "--set",
            REQUIRED[2],
        ],
    );
    assert!(ok, "helm lint:\n{out}");

    // Each required value missing: rendering fails and names it.
    for (i, name) in [
        "publicUrl",
        "secrets.masterKey.name",
        "secrets.databaseUrl.name",
    ]
    .iter()
    .enumerate()
    {
        let sets: Vec<&str> = REQUIRED
            .iter()
            .enumerate()
            .filter(|(j, _)| *j != i)
            .map(|(_, s)| *s)
            .collect();
        let (ok, out) = helm_template(&sets);
        assert!(!ok && out.contains(name), "without {name}: {out}");
    }

    // Plain HTTP inside the cluster (TLS at the ingress), two replicas.
    let (ok, plain) = helm_template(&REQUIRED);
    assert!(ok, "{plain}");
    validate(&plain);
    let docs = parse(&plain);
    let deploy = kind(&docs, "Deployment").expect("a Deployment");
    assert_eq!(deploy["spec"]["replicas"], 2);
    assert_eq!(
        deploy["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
        0
    );
    let pod = &deploy["spec"]["template"]["spec"];
    assert_eq!(pod["automountServiceAccountToken"], false);
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    assert_eq!(pod["securityContext"]["runAsUser"], 10001);
    assert_eq!(
        pod["securityContext"]["seccompProfile"]["type"],
        "RuntimeDefault"
    );
    let c = &pod["containers"][0];
    assert_eq!(c["securityContext"]["readOnlyRootFilesystem"], true);
    assert_eq!(c["securityContext"]["allowPrivilegeEscalation"], false);
    assert_eq!(c["securityContext"]["capabilities"]["drop"][0], "ALL");
    assert_eq!(c["livenessProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["startupProbe"]["httpGet"]["path"], "/health");
    assert_eq!(c["readinessProbe"]["httpGet"]["path"], "/ready");
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTP");
    let env = env_of(c);
    // Secrets only by reference: never a value in the manifests.
    assert_eq!(
        env["STS_MASTER_KEY"]["valueFrom"]["secretKeyRef"]["name"],
        "sts-master-key"
    );
    assert_eq!(
        env["STS_DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"],
        "sts-database"
    );
    assert!(env["STS_MASTER_KEY"].get("value").is_none());
    assert!(!env.contains_key("STS_TLS_CERT_FILE"));
    assert!(
        c["volumeMounts"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m["mountPath"] == "/etc/sts/sts.toml" && m["readOnly"] == true)
    );
    let pdb = kind(&docs, "PodDisruptionBudget").expect("a PodDisruptionBudget with 2 replicas");
    assert_eq!(pdb["spec"]["maxUnavailable"], 1);
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        deploy["spec"]["selector"]["matchLabels"]
    );
    assert!(kind(&docs, "ConfigMap").unwrap()["data"]["sts.toml"].is_string());
    assert!(kind(&docs, "Service").is_some());
    assert!(
        kind(&docs, "Secret").is_none(),
        "the chart never creates or holds a secret"
    );

    // TLS from a kubernetes.io/tls Secret: HTTPS probes, the files named by STS_TLS_*.
    let mut sets = REQUIRED.to_vec();
    sets.push("secrets.tls.name=sts-tls");
    sets.push("replicaCount=1");
    let (ok, tls) = helm_template(&sets);
    assert!(ok, "{tls}");
    validate(&tls);
    let docs = parse(&tls);
    let deploy = kind(&docs, "Deployment").unwrap();
    let pod = &deploy["spec"]["template"]["spec"];
    let c = &pod["containers"][0];
    assert_eq!(c["readinessProbe"]["httpGet"]["scheme"], "HTTPS");
    let env = env_of(c);
    assert_eq!(env["STS_TLS_CERT_FILE"]["value"], "/etc/sts/tls/tls.crt");
    assert_eq!(env["STS_TLS_KEY_FILE"]["value"], "/etc/sts/tls/tls.key");
    assert!(
        pod["volumes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|v| v["secret"]["secretName"] == "sts-tls")
    );
    assert!(
        kind(&docs, "PodDisruptionBudget").is_none(),
        "no PodDisruptionBudget for one replica (it would block every node drain)"
    );
}

/// The chart's configuration, run: two `sts serve` with the Deployment's environment (the Secrets' values
/// filled in, the listen port moved to a free loopback port) and the ConfigMap's sts.toml, on one
/// PostgreSQL database, from a read-only working directory as readOnlyRootFilesystem gives them.
#[tokio::test]
async fn chart_configuration_runs_two_replicas_on_postgres_from_a_read_only_directory() {
    let (ok, rendered) = helm_template(&REQUIRED);
    assert!(ok, "{rendered}");
    let docs = parse(&rendered);
    let deploy = kind(&docs, "Deployment").unwrap();
    let c = &deploy["spec"]["template"]["spec"]["containers"][0];
    let toml = kind(&docs, "ConfigMap").unwrap()["data"]["sts.toml"]
        .as_str()
        .unwrap()
        .to_string();

    // A read-only working directory holding only the mounted config.
    let dir = tempfile::tempdir().unwrap();
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&work)
        .status()
        .expect("run mount");
    assert!(
        mounted.success(),
        "this test mounts a tmpfs (needs root, as the suite has)"
    );
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
    let _unmount = Unmount(work.clone());
    let config_path = work.join("sts.toml");
    std::fs::write(&config_path, &toml).unwrap();
    let remount = Command::new("mount")
        .args(["-o", "remount,ro"])
        .arg(&work)
        .status()
        .unwrap();
    assert!(remount.success());
    assert!(
        std::fs::write(work.join("probe"), "x").is_err(),
        "read-only"
    );

    let database_url = sts_tests::postgres::cluster().create_database();
    let master_key = {
        use base64::Engine;
        let mut k = [0u8; 32];
        aws_lc_rs::rand::fill(&mut k).unwrap();
        base64::engine::general_purpose::STANDARD.encode(k)
    };
    let secret_values: BTreeMap<&str, &str> = [
        ("sts-master-key/master-key", master_key.as_str()),
        ("sts-database/url", database_url.as_str()),
    ]
    .into();

    let mut replicas = Vec::new();
    for _ in 0..2 {
        let port = sts_tests::saml_idp::free_port();
        let metrics_port = sts_tests::saml_idp::free_port();
        let mut cmd = Command::new(sts_bin());
        cmd.env_clear()
            .env("PATH", std::env::var("PATH").unwrap())
            .current_dir(&work)
            .args(
                c["args"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|a| a.as_str().unwrap()),
            );
        for (name, e) in env_of(c) {
            let value = if let Some(v) = e["value"].as_str() {
                match name.as_str() {
                    "STS_CONFIG" => {
                        assert_eq!(v, "/etc/sts/sts.toml");
                        config_path.display().to_string()
                    }
                    "STS_LISTEN" => {
                        assert_eq!(v, "0.0.0.0:19090");
                        format!("127.0.0.1:{port}")
                    }
                    "STS_METRICS_LISTEN" => {
                        assert_eq!(v, "0.0.0.0:9464");
                        format!("127.0.0.1:{metrics_port}")
                    }
                    _ => v.to_string(),
                }
            } else {
                let r = &e["valueFrom"]["secretKeyRef"];
                let key = format!(
                    "{}/{}",
                    r["name"].as_str().unwrap(),
                    r["key"].as_str().unwrap()
                );
                secret_values
                    .get(key.as_str())
                    .unwrap_or_else(|| panic!("no value for the Secret key {key}"))
                    .to_string()
            };
            cmd.env(name, value);
        }
        let log = dir.path().join(format!("replica-{port}.log"));
        cmd.stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("start sts");
        struct Kill(std::process::Child);
        impl Drop for Kill {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        replicas.push((Kill(child), port, metrics_port, log));
    }

    let http = reqwest::Client::new();
    let port_of = |probe: &str| c[probe]["httpGet"]["path"].as_str().unwrap().to_string();
    let (live, ready) = (port_of("livenessProbe"), port_of("readinessProbe"));
    let mut jwks = Vec::new();
    for (child, port, metrics_port, log) in &mut replicas {
        let base = format!("http://127.0.0.1:{port}");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        loop {
            if let Ok(r) = http.get(format!("{base}{ready}")).send().await
                && r.status() == 200
            {
                break;
            }
            if let Some(status) = child.0.try_wait().unwrap() {
                panic!(
                    "a replica with the chart's configuration exited ({status}):\n{}",
                    std::fs::read_to_string(&*log).unwrap_or_default()
                );
            }
            assert!(
                std::time::Instant::now() < deadline,
                "a replica with the chart's configuration never became ready:\n{}",
                std::fs::read_to_string(&*log).unwrap_or_default()
            );
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        assert_eq!(
            http.get(format!("{base}{live}"))
                .send()
                .await
                .unwrap()
                .status(),
            200
        );
        let metrics = http
            .get(format!("http://127.0.0.1:{metrics_port}/metrics"))
            .send()
            .await
            .unwrap();
        assert_eq!(metrics.status(), 200);
        let discovery: Value = http
            .get(format!("{base}/.well-known/openid-configuration"))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(discovery["issuer"], "https://sts.example.com");
        jwks.push(sts_tests::jwks_kids_at(&base).await);
    }
    assert!(!jwks[0].is_empty());
    assert_eq!(jwks[0], jwks[1], "both replicas publish the same keys");
}

// ---------------------------------------------------------------------------------------------------
// systemd unit

fn systemd_analyze() -> &'static str {
    for p in ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"] {
        if Path::new(p).is_file() {
            return p;
        }
    }
    panic!("systemd-analyze missing: run scripts/install-deps --peers (Debian package systemd)");
}

#[test]
fn systemd_unit_verifies_and_its_sandbox_scores_ok() {
    let unit = std::fs::read_to_string(repo_root().join("deploy/systemd/sts.service")).unwrap();
    assert!(unit.contains("ExecStart=/usr/local/bin/sts --config /etc/sts/sts.toml serve"));
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart's program exists: point it at the binary built here.
    let here = dir.path().join("sts.service");
    std::fs::write(
        &here,
        unit.replace("/usr/local/bin/sts", &sts_bin().display().to_string()),
    )
    .unwrap();
    let here = here.display().to_string();
    let (ok, out) = run(systemd_analyze(), &["verify", "--man=no", &here]);
    assert!(
        ok && !out.contains("sts.service:"),
        "systemd-analyze verify:\n{out}"
    );
    // verify is live: a unit naming a missing program fails.
    let bad = dir.path().join("bad.service");
    std::fs::write(&bad, unit.replace("/usr/local/bin/sts", "/nonexistent/sts")).unwrap();
    let (ok, _) = run(
        systemd_analyze(),
        &["verify", "--man=no", &bad.display().to_string()],
    );
    assert!(!ok, "verify must refuse a unit whose program is missing");

    // The sandbox: systemd's own exposure score (0 = fully sandboxed, 10 = none), at most 2.0 ("OK").
    let (_, out) = run(systemd_analyze(), &["security", "--offline=yes", &here]);
    let score: f64 = out
        .lines()
        .find_map(|l| l.split("Overall exposure level for sts.service:").nth(1))
        .and_then(|s| s.split_whitespace().next())
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{out}"));
    assert!(score <= 2.0, "exposure {score} > 2.0:\n{out}");
    for line in [
        "DynamicUser=yes",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
        "CapabilityBoundingSet=",
        "StateDirectory=sts",
        "KillSignal=SIGTERM",
    ] {
        assert!(unit.lines().any(|l| l == line), "{line}");
    }
}
