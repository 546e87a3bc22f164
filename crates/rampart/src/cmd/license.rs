//! `rampart license inspect|issue`: argument handling and printing; the work is in
//! `rampart_trust::license`.

use std::io::Read as _;
use std::process::ExitCode;

use rampart_trust::keys::{Alg, SigningKey};
use rampart_trust::license::{self, Expect, Issue, Standing};

use crate::cli::{Format, LicenseCommand, LicenseInspectArgs, LicenseIssueArgs};

pub(crate) fn run(c: LicenseCommand) -> anyhow::Result<ExitCode> {
    match c {
        LicenseCommand::Inspect(a) => inspect(&a),
        LicenseCommand::Issue(a) => issue(&a),
    }
}

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(0))
}

/// The token: given as is, in a file, or on standard input.
fn token_text(arg: &str) -> anyhow::Result<String> {
    if arg == "-" {
        let mut s = String::new();
        std::io::stdin().read_to_string(&mut s)?;
        return Ok(s.trim().to_owned());
    }
    if arg.split('.').count() != 3 || std::path::Path::new(arg).is_file() {
        let s = std::fs::read_to_string(arg).map_err(|e| {
            anyhow::anyhow!("{arg}: not a token, and cannot read it as a file: {e}")
        })?;
        return Ok(s.trim().to_owned());
    }
    Ok(arg.trim().to_owned())
}

fn inspect(a: &LicenseInspectArgs) -> anyhow::Result<ExitCode> {
    if matches!(a.format, Format::Junit) {
        anyhow::bail!("--format junit is for check reports: use text or json");
    }
    let token = token_text(&a.token)?;
    let pem = std::fs::read(&a.public_key)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.public_key.display()))?;
    let expect = Expect {
        algorithm: a.algorithm.as_deref(),
        issuer: a.issuer.as_deref(),
        audience: a.audience.as_deref(),
    };
    let now = now();
    let rfc = rampart_config::civil::rfc3339;
    let verdict = license::verify(&token, &pem, &expect);
    let (ok, summary) = match &verdict {
        Err(e) => (false, format!("invalid: {e}")),
        Ok(l) => match l.standing(now, 0) {
            Standing::Valid => (true, format!("valid: expires in {} days", l.days_left(now))),
            Standing::NotYetValid => (
                false,
                format!("not valid yet: from {}", rfc(l.not_before.unwrap_or(0))),
            ),
            Standing::Grace | Standing::Expired => (
                false,
                format!(
                    "expired on {} ({} days ago)",
                    rfc(l.expires_at),
                    -l.days_left(now)
                ),
            ),
        },
    };
    match a.format {
        Format::Json => {
            let v = serde_json::json!({
                "valid": ok,
                "verdict": summary,
                "license": verdict.as_ref().ok().map(|l| serde_json::json!({
                    "algorithm": l.alg,
                    "customer": l.customer,
                    "license_id": l.id,
                    "issuer": l.issuer,
                    "issued_at": l.issued_at.map(rfc),
                    "not_before": l.not_before.map(rfc),
                    "expires_at": rfc(l.expires_at),
                    "days_remaining": l.days_left(now),
                    "features": l.features,
                    "seats": l.seats,
                    "max_instances": l.max_instances,
                    "installation_id": l.installation_id,
                    "claims": l.claims,
                })),
            });
            println!("{}", serde_json::to_string_pretty(&v)?);
        }
        _ => {
            if let Ok(l) = &verdict {
                let opt = |v: Option<String>| v.unwrap_or_else(|| "-".into());
                println!("customer         {}", l.customer);
                println!("license id       {}", opt(l.id.clone()));
                println!("issuer           {}", opt(l.issuer.clone()));
                println!("signed with      {}", l.alg);
                println!("issued           {}", opt(l.issued_at.map(rfc)));
                println!("expires          {}", rfc(l.expires_at));
                println!(
                    "features         {}",
                    if l.features.is_empty() {
                        "-".into()
                    } else {
                        l.features.join(", ")
                    }
                );
                println!("seats            {}", opt(l.seats.map(|n| n.to_string())));
                println!(
                    "max instances    {}",
                    opt(l.max_instances.map(|n| n.to_string()))
                );
                println!("installation     {}", opt(l.installation_id.clone()));
            }
            println!("verdict          {summary}");
        }
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// `2027-12-31` (the end of that day, UTC) or `2027-12-31T12:00:00Z`.
fn parse_expiry(s: &str) -> anyhow::Result<i64> {
    let bad = || anyhow::anyhow!("--expires {s:?}: expected 2027-12-31 or 2027-12-31T12:00:00Z");
    let (date, time) = s.split_once('T').unwrap_or((s, ""));
    let mut d = date.split('-').map(|p| p.parse::<i64>().map_err(|_| bad()));
    let (y, m, day) = (
        d.next().ok_or_else(bad)??,
        d.next().ok_or_else(bad)??,
        d.next().ok_or_else(bad)??,
    );
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || d.next().is_some() {
        return Err(bad());
    }
    let days = rampart_config::civil::to_days(y, m, day);
    if time.is_empty() {
        return Ok(days * 86_400 + 86_399);
    }
    let t = time.strip_suffix('Z').ok_or_else(bad)?;
    let mut p = t.split(':').map(|p| p.parse::<i64>().map_err(|_| bad()));
    let (h, mi, sec) = (
        p.next().ok_or_else(bad)??,
        p.next().ok_or_else(bad)??,
        p.next().unwrap_or(Ok(0))?,
    );
    Ok(days * 86_400 + h * 3600 + mi * 60 + sec)
}

fn issue(a: &LicenseIssueArgs) -> anyhow::Result<ExitCode> {
    let pem = std::fs::read(&a.key)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", a.key.display()))?;
    let alg = match &a.alg {
        Some(alg) => alg.clone(),
        None => {
            let key = SigningKey::from_pem(&pem)
                .map_err(|e| anyhow::anyhow!("{}: {e}", a.key.display()))?;
            match key.default_alg() {
                Alg::Ed25519 => "EdDSA",
                Alg::Es256 => "ES256",
                Alg::RsaPss | Alg::Rs256 => "RS256",
            }
            .to_owned()
        }
    };
    let now = now();
    let expires_at = match (&a.expires, a.days) {
        (Some(e), _) => parse_expiry(e)?,
        (None, Some(d)) => now + i64::from(d) * 86_400,
        (None, None) => anyhow::bail!("give --expires DATE or --days N: a license must expire"),
    };
    if expires_at <= now {
        anyhow::bail!("the expiry is in the past");
    }
    let token = license::issue(
        &Issue {
            customer: a.customer.clone(),
            expires_at,
            issued_at: now,
            id: Some(a.id.clone().unwrap_or_else(license::new_installation_id)),
            issuer: a.issuer.clone(),
            audience: a.audience.clone(),
            features: a.feature.clone(),
            seats: a.seats,
            max_instances: a.max_instances,
            installation_id: a.installation_id.clone(),
        },
        &pem,
        &alg,
    )
    .map_err(|e| anyhow::anyhow!(e))?;
    match &a.output {
        Some(path) => {
            use std::io::Write as _;
            use std::os::unix::fs::OpenOptionsExt as _;
            std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(path)
                .and_then(|mut f| f.write_all(format!("{token}\n").as_bytes()))
                .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
            eprintln!(
                "{}: license for {} ({alg}), expires {}",
                path.display(),
                a.customer,
                rampart_config::civil::rfc3339(expires_at)
            );
        }
        None => println!("{token}"),
    }
    Ok(ExitCode::SUCCESS)
}
