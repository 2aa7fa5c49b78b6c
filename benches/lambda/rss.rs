//! Item 3: peak memory of every function over many warm invocations under the runtime
//! emulator, read from `/proc/<bootstrap pid>/status`, and whether it grows.

use crate::support::{
    as_user, conditions, create_pat_body, event, fresh_env, functions, mib,
    seed_authorizer_event_token, seed_get_event_token, seed_many, with_path_parameter, Function,
    Options, Section, Verdict,
};
use harness::rie::Emulator;
use harness::DynamoLocal;
use serde_json::Value;
use shared::tokens::Token;
use std::collections::HashMap;

const LIMIT: u64 = 32 * 1024 * 1024;
/// Allowed difference between the peaks of the first and the last window: allocator noise,
/// well under one invocation's worth of leaked buffers times the invocations between them.
const GROWTH_TOLERANCE: i64 = 256 * 1024;

pub async fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(3, "Peak memory");
    conditions(&mut section);
    let invocations: usize = options.pick(1000, 50);
    let window = options.pick(100, 10);
    let per_user = invocations.min(100);
    let users_needed = invocations.div_ceil(per_user);

    let env = fresh_env(&[]).await;
    let store = &env.app.store;
    harness::dynamodb_local::progress(&format!(
        "bench: rss: seeding {} tokens",
        2 * invocations + 22
    ));
    let get_event = seed_get_event_token(store).await?;
    let (authorizer_event, _) = seed_authorizer_event_token(store).await?;
    seed_many(store, &["alice".to_owned()], 20).await;
    let revoke_users: Vec<String> = (0..users_needed).map(|u| format!("revoke-{u}")).collect();
    let delete_users: Vec<String> = (0..users_needed).map(|u| format!("delete-{u}")).collect();
    let to_revoke = flatten(
        seed_many(store, &revoke_users, per_user).await,
        &revoke_users,
    );
    let to_delete = flatten(
        seed_many(store, &delete_users, per_user).await,
        &delete_users,
    );

    let list_all = |name: &str| {
        let mut e = as_user(event(name), "alice");
        e["rawQueryString"] = "".into();
        if let Some(o) = e.as_object_mut() {
            o.remove("queryStringParameters");
        }
        e
    };
    let list_app_tokens = list_all("list-app-tokens.json");
    let list_pats = list_all("list-pats.json");
    let create = event("create-app-token.json");
    let create_pat = event("create-pat.json");
    let revoke = event("revoke-app-token.json");
    let delete = event("delete-pat.json");
    let cleanup = event("cleanup.json");
    let fallback = event("fallback.json");
    let nth_event = |logical_id: &str, i: usize| -> Option<Value> {
        Some(match logical_id {
            "GetAppTokenFunction" => get_event.clone(),
            "ListAppTokensFunction" => list_app_tokens.clone(),
            "ListPatsFunction" => list_pats.clone(),
            "CreateAppTokenFunction" => as_user(create.clone(), &format!("create-{i}")),
            "CreatePatFunction" => {
                let mut e = as_user(create_pat.clone(), &format!("create-pat-{i}"));
                e["body"] = create_pat_body(&format!("bot {i}")).into();
                e
            }
            "RevokeAppTokenFunction" => {
                let token = &to_revoke[i];
                with_path_parameter(
                    as_user(revoke.clone(), &token.user_id),
                    "token_uuid",
                    &token.uuid.to_string(),
                )
            }
            "DeletePatFunction" => {
                let token = &to_delete[i];
                with_path_parameter(
                    as_user(delete.clone(), &token.user_id),
                    "id",
                    &token.number.to_string(),
                )
            }
            "AuthorizerFunction" => authorizer_event.clone(),
            "CleanupFunction" => cleanup.clone(),
            "FallbackFunction" => fallback.clone(),
            _ => return None,
        })
    };

    let local = DynamoLocal::shared();
    let mut rows = Vec::new();
    let mut worst: Option<(u64, String)> = None;
    let mut all_flat = true;
    for function in functions(env.table(), local) {
        if nth_event(&function.logical_id, 0).is_none() {
            return Err(format!(
                "no events for {} in the memory benchmark",
                function.logical_id
            ));
        }
        harness::dynamodb_local::progress(&format!(
            "bench: rss: {} x{invocations}",
            function.logical_id
        ));
        let m = measure(&function, invocations, window, |i| {
            nth_event(&function.logical_id, i).unwrap_or_default()
        })
        .await?;
        let growth = m.last_peak as i64 - m.first_peak as i64;
        let flat = growth <= GROWTH_TOLERANCE;
        let ok = m.hwm <= LIMIT && flat && m.failures == 0;
        all_flat &= flat;
        if worst.as_ref().is_none_or(|(hwm, _)| m.hwm > *hwm) {
            worst = Some((m.hwm, function.logical_id.clone()));
        }
        rows.push(vec![
            function.logical_id.clone(),
            invocations.to_string(),
            mib(m.first_peak),
            mib(m.last_peak),
            format!("{:+} KiB", growth / 1024),
            mib(m.hwm),
            m.failures.to_string(),
            crate::support::met(Some(ok)).to_owned(),
        ]);
        section.verdicts.push(Verdict::new(
            format!("peak RSS, {}", function.logical_id),
            "≤ 32 MiB, no growth",
            format!("{} (growth {:+} KiB)", mib(m.hwm), growth / 1024),
            Some(ok),
        ));
    }
    section.paragraph(format!(
        "Each function's `bootstrap` under the runtime emulator, invoked {invocations} times in a \
         row with its `events/` file (creates as a new user each time, revokes and deletes of \
         seeded tokens, lists of a user with 22 tokens, the authorizer with one valid token, \
         cleanup with nothing due, the `$default` route's 405). Resident set size from `/proc/<pid>/status` of the bootstrap \
         process: *first* and *last* are the highest `VmRSS` seen after each of the first and \
         the last {window} invocations; *peak* is `VmHWM` at the end. \"No growth\": last − first \
         ≤ {} KiB. Target: peak ≤ 32 MiB and no growth. Lambda's 128 MB functions report \
         \"Max Memory Used\" for the whole sandbox, a few MiB above the process's own figure.",
        GROWTH_TOLERANCE / 1024
    ));
    section.table(
        &[
            "function",
            "invocations",
            "RSS, first window",
            "RSS, last window",
            "growth",
            "peak (VmHWM)",
            "failed invocations",
            "target",
        ],
        &rows,
    );
    if !all_flat {
        section.paragraph(
            "A function whose last window is above its first either keeps something per \
             invocation or its allocator has not yet reached its steady state; run it longer to \
             tell the two apart.",
        );
    }
    env.drop_table().await;
    Ok(section)
}

/// Tokens in user order, each user's in the order of their numbers.
fn flatten(mut seeded: HashMap<String, Vec<Token>>, users: &[String]) -> Vec<Token> {
    users
        .iter()
        .flat_map(|u| seeded.remove(u).unwrap_or_default())
        .collect()
}

struct Memory {
    first_peak: u64,
    last_peak: u64,
    hwm: u64,
    failures: usize,
}

async fn measure(
    function: &Function,
    invocations: usize,
    window: usize,
    nth_event: impl Fn(usize) -> Value,
) -> Result<Memory, String> {
    let emulator = Emulator::start(&function.bootstrap(), &function.environment)?;
    let mut memory = Memory {
        first_peak: 0,
        last_peak: 0,
        hwm: 0,
        failures: 0,
    };
    let mut pid = None;
    for i in 0..invocations {
        let answer = emulator.invoke(&nth_event(i)).await?;
        if !succeeded(&answer) {
            memory.failures += 1;
            if memory.failures == 1 {
                harness::dynamodb_local::progress(&format!(
                    "bench: rss: {} answered {answer}",
                    function.logical_id
                ));
            }
        }
        if pid.is_none() {
            pid = bootstrap_pid(emulator.invoke_port);
        }
        let Some(pid) = pid else {
            return Err(format!(
                "cannot find the bootstrap process of {}",
                function.logical_id
            ));
        };
        if i < window {
            memory.first_peak = memory.first_peak.max(status_bytes(pid, "VmRSS:")?);
        }
        if i >= invocations - window {
            memory.last_peak = memory.last_peak.max(status_bytes(pid, "VmRSS:")?);
        }
        if i + 1 == invocations {
            memory.hwm = status_bytes(pid, "VmHWM:")?;
        }
    }
    emulator.stop();
    Ok(memory)
}

fn succeeded(answer: &Value) -> bool {
    if let Some(status) = answer["statusCode"].as_u64() {
        return (200..300).contains(&status);
    }
    answer["isAuthorized"] == true || answer["deleted"].is_u64()
}

/// The emulator listening on this invoke port, then its child: the function's process.
fn bootstrap_pid(invoke_port: u16) -> Option<u32> {
    let address = format!("127.0.0.1:{invoke_port}");
    let processes: Vec<(u32, u32, Vec<String>)> = std::fs::read_dir("/proc")
        .ok()?
        .filter_map(|entry| {
            let pid: u32 = entry.ok()?.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
            let argv: Vec<String> = cmdline
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            // The fields after the command name, which may itself hold spaces and parentheses.
            let ppid: u32 = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            Some((pid, ppid, argv))
        })
        .collect();
    let rie = processes.iter().find(|(_, _, argv)| {
        argv.first().is_some_and(|a| a.ends_with("aws-lambda-rie")) && argv.contains(&address)
    })?;
    processes
        .iter()
        .find(|(_, ppid, argv)| {
            *ppid == rie.0 && argv.first().is_some_and(|a| a.ends_with("bootstrap"))
        })
        .map(|(pid, _, _)| *pid)
}

/// A `kB` line of `/proc/<pid>/status`, in bytes.
fn status_bytes(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("/proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|kb| kb.parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}
