//! The deployment files in `deploy/` parse and say the right things: probe paths, ports,
//! security context, sidecar layout, and a configuration and policy that validate.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_yaml::Value;

use crate::support::{BIN, TestResult, output_text};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("deploy")
}

fn docs(path: &Path) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut out = Vec::new();
    for d in serde_yaml::Deserializer::from_str(&text) {
        out.push(Value::deserialize(d)?);
    }
    Ok(out)
}

/// Every object of a kustomization, with its files checked to exist.
fn kustomize(dir: &Path) -> Result<Vec<Value>, Box<dyn std::error::Error>> {
    let k = docs(&dir.join("kustomization.yaml"))?
        .pop()
        .ok_or("empty kustomization")?;
    let mut objects = Vec::new();
    for r in k["resources"].as_sequence().ok_or("no resources")? {
        let p = dir.join(r.as_str().ok_or("resource")?);
        if p.is_dir() {
            objects.extend(kustomize(&p)?);
        } else {
            objects.extend(docs(&p)?);
        }
    }
    for g in k["configMapGenerator"].as_sequence().into_iter().flatten() {
        for f in g["files"].as_sequence().ok_or("files")? {
            let p = dir.join(f.as_str().ok_or("file")?);
            assert!(p.is_file(), "{} is missing", p.display());
        }
    }
    Ok(objects)
}

fn find<'a>(objects: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    objects
        .iter()
        .find(|o| o["kind"] == kind && o["metadata"]["name"] == name)
}

#[test]
fn manifests_are_right() -> TestResult {
    let objects = kustomize(&root().join("openshift"))?;
    let app = find(&objects, "Deployment", "dash-app").ok_or("no dash-app Deployment")?;
    let spec = &app["spec"]["template"]["spec"];
    let containers = spec["containers"].as_sequence().ok_or("containers")?;
    let by_name = |n: &str| containers.iter().find(|c| c["name"] == n);
    let dash = by_name("dash-app").ok_or("no Dash container")?;
    let gate = by_name("dashgate").ok_or("no dashgate sidecar")?;
    assert!(
        serde_yaml::to_string(&dash["command"])?.contains("127.0.0.1:8050"),
        "the app listens on loopback only"
    );
    assert_eq!(gate["ports"][0]["containerPort"], 4180);
    assert_eq!(gate["readinessProbe"]["httpGet"]["path"], "/auth/readyz");
    assert_eq!(gate["livenessProbe"]["httpGet"]["path"], "/auth/healthz");
    assert_eq!(
        gate["readinessProbe"]["httpGet"]["port"],
        gate["ports"][0]["name"]
    );
    for c in [dash, gate] {
        let sc = &c["securityContext"];
        assert_eq!(sc["runAsNonRoot"], true, "{:?}", c["name"]);
        assert_eq!(sc["allowPrivilegeEscalation"], false);
        assert!(
            sc["capabilities"]["drop"]
                .as_sequence()
                .is_some_and(|d| d.iter().any(|x| x == "ALL"))
        );
        assert!(c["resources"]["requests"].is_mapping(), "resource requests");
    }
    assert_eq!(gate["securityContext"]["readOnlyRootFilesystem"], true);
    let env = serde_yaml::to_string(&gate["env"])?;
    assert!(
        env.contains("secretKeyRef"),
        "the database URL comes from a Secret"
    );
    assert!(
        !serde_yaml::to_string(&gate["args"])?.contains("postgres://"),
        "no secret on argv"
    );
    let volumes = serde_yaml::to_string(&spec["volumes"])?;
    assert!(
        volumes.contains("secretName: dashgate-keys"),
        "keys from a Secret"
    );
    assert!(app["spec"]["replicas"].as_u64().is_some_and(|r| r >= 2));

    let svc = find(&objects, "Service", "dash-app").ok_or("no Service")?;
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], "http");
    assert_eq!(
        svc["spec"]["selector"],
        app["spec"]["selector"]["matchLabels"]
    );
    let pdb = find(&objects, "PodDisruptionBudget", "dash-app").ok_or("no PodDisruptionBudget")?;
    assert_eq!(
        pdb["spec"]["selector"]["matchLabels"],
        app["spec"]["selector"]["matchLabels"]
    );
    let route = find(&objects, "Route", "dash-app").ok_or("no Route")?;
    assert_eq!(route["spec"]["tls"]["termination"], "edge");
    assert_eq!(route["spec"]["to"]["name"], "dash-app");
    assert!(
        find(&objects, "Deployment", "dashgate-redis").is_some()
            && find(&objects, "Service", "dashgate-redis").is_some()
    );
    Ok(())
}

#[test]
fn embedded_config_and_policy_validate() -> TestResult {
    let base = root().join("base");
    let dir = tempfile::tempdir()?;
    let config = std::fs::read_to_string(base.join("dashgate.toml"))?
        .replace(
            "/etc/dashgate/config/policy.toml",
            &base.join("policy.toml").display().to_string(),
        )
        .replace(
            "/etc/dashgate/keys",
            &dir.path().join("keys").display().to_string(),
        );
    let file = dir.path().join("dashgate.toml");
    std::fs::write(&file, config)?;
    let out = std::process::Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&file)
        .env(
            "DASHGATE_DATABASE_URL",
            "postgres://dashgate@127.0.0.1:1/dashgate",
        )
        .output()?;
    assert!(out.status.success(), "{}", output_text(&out));
    assert!(output_text(&out).contains("rule(s)"));
    Ok(())
}

#[test]
fn containerfile_is_multi_stage_and_non_root() -> TestResult {
    let text = std::fs::read_to_string(root().join("Containerfile"))?;
    assert_eq!(
        text.lines().filter(|l| l.starts_with("FROM ")).count(),
        2,
        "multi-stage"
    );
    let user = text
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix("USER "))
        .ok_or("no USER")?;
    assert!(
        user.trim().parse::<u32>().is_ok_and(|u| u != 0),
        "numeric non-root user"
    );
    assert!(
        text.contains("chgrp 0") && text.contains("g=u"),
        "works under an arbitrary UID in group 0"
    );
    Ok(())
}
