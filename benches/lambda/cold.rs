//! Item 2: cold start. Each start is a fresh runtime emulator with the function's `bootstrap`;
//! the emulator starts the bootstrap on the first invocation, as Lambda does, so the first
//! invocation carries the process start, the init (config, SDK client) and the first request on
//! a new connection. Compared with warm invocations of the same event on the same process.

use crate::support::{
    conditions, fresh_env, functions, median, ms, record_use, seed_authorizer_event_token,
    seed_get_event_token, Function, Options, Section, Verdict,
};
use crate::warm::on_emulator;
use harness::DynamoLocal;
use serde_json::Value;
use std::time::{Duration, Instant};

const TARGET: Duration = Duration::from_millis(30);

struct Case {
    logical_id: &'static str,
    event: Value,
    check: fn(&Value) -> bool,
    note: &'static str,
}

#[derive(Default)]
struct Measured {
    ready: Vec<Duration>,
    init: Vec<Duration>,
    cold: Vec<Duration>,
    warm: Vec<Duration>,
}

pub async fn run(options: &Options) -> Result<Section, String> {
    let mut section = Section::new(2, "Cold start");
    conditions(&mut section);
    let starts = options.pick(20, 3);
    let warm_each = options.pick(10, 3);

    let env = fresh_env(&[]).await;
    let store = &env.app.store;
    let get_event = seed_get_event_token(store).await?;
    let (authorizer_event, secret) = seed_authorizer_event_token(store).await?;
    // `last used` is written now, and the window is widened for this step, so no invocation
    // below writes it: cold and warm make the same single GetItem.
    record_use(store, &secret).await?;

    let cases = [
        Case {
            logical_id: "GetAppTokenFunction",
            event: get_event,
            check: |answer| answer["statusCode"] == 200,
            note: "the issue's case: the caller's GetItem, then the token's",
        },
        Case {
            logical_id: "AuthorizerFunction",
            event: authorizer_event,
            check: |answer| answer["isAuthorized"] == true,
            note:
                "in front of every route: one GetItem (`LAST_USED_THROTTLE=1h` here, so no write)",
        },
    ];
    let local = DynamoLocal::shared();
    let all = functions(env.table(), local).await?;
    let mut rows = Vec::new();
    for case in &cases {
        let function = all
            .iter()
            .find(|f| f.logical_id == case.logical_id)
            .ok_or_else(|| format!("template.yaml has no {}", case.logical_id))?;
        let measured = measure(function, case, starts, warm_each).await?;
        let Measured {
            mut ready,
            mut init,
            mut cold,
            mut warm,
        } = measured;
        let (cold_median, warm_median) = (median(&mut cold), median(&mut warm));
        let difference = cold_median.saturating_sub(warm_median);
        let ok = difference <= TARGET;
        rows.push(vec![
            format!("{} ({})", case.logical_id, case.note),
            starts.to_string(),
            ms(median(&mut ready)),
            if init.is_empty() {
                "—".into()
            } else {
                ms(median(&mut init))
            },
            format!(
                "{} (min {}, max {})",
                ms(cold_median),
                ms(cold[0]),
                ms(cold[cold.len() - 1])
            ),
            ms(warm_median),
            ms(difference),
            crate::support::met(Some(ok)).to_owned(),
        ]);
        section.verdicts.push(Verdict::new(
            format!("cold − warm, {}", case.logical_id),
            "≤ 30 ms",
            ms(difference),
            Some(ok),
        ));
    }
    section.paragraph(format!(
        "Each start: a new runtime interface emulator (the one `sam local invoke` runs) with the \
         `bootstrap` `sam build` made and the template's environment, against DynamoDB Local on \
         loopback. *RIE ready*: spawn until its port listens (polled every 50 ms); the emulator \
         starts the bootstrap only on the first invocation, as Lambda does. *Init*: the \
         emulator's own `INIT REPORT` (bootstrap exec to its first request for an event: \
         tracing, config, the SDK client), what Lambda bills as Init Duration. *First \
         invocation*: the POST of the event until the answer, so process start + init + the \
         first request on a new connection. *Warm*: the same event again on the same process \
         ({warm_each} per start). Medians over {starts} fresh starts."
    ));
    section.table(
        &[
            "function",
            "starts",
            "RIE ready",
            "init (RIE)",
            "first invocation",
            "warm invocation",
            "cold − warm",
            "≤ 30 ms",
        ],
        &rows,
    );
    env.drop_table().await;
    Ok(section)
}

async fn measure(
    function: &Function,
    case: &Case,
    starts: usize,
    warm_each: usize,
) -> Result<Measured, String> {
    let mut environment = function.environment.clone();
    environment.retain(|(k, _)| k != "LAST_USED_THROTTLE");
    environment.push(("LAST_USED_THROTTLE".into(), "1h".into()));
    let mut measured = Measured::default();
    for _ in 0..starts {
        let spawned = Instant::now();
        on_emulator(&function.bootstrap(), &environment, async |emulator| {
            measured.ready.push(spawned.elapsed());
            // The first invocation (cold), then the warm ones on the same process.
            let mut times = Vec::with_capacity(1 + warm_each);
            for _ in 0..=warm_each {
                let started = Instant::now();
                let answer = emulator.invoke(&case.event).await?;
                times.push(started.elapsed());
                if !(case.check)(&answer) {
                    let id = &function.logical_id;
                    return Err(format!("{id}: unexpected answer {answer}"));
                }
            }
            measured.cold.push(times[0]);
            measured.warm.push(median(&mut times[1..]));
            measured.init.extend(init_duration(&emulator.log_text()));
            Ok(())
        })
        .await?;
    }
    Ok(measured)
}

/// `INIT REPORT(durationMs: 14.225000)` from the emulator's log.
fn init_duration(log: &str) -> Option<Duration> {
    let line = log
        .lines()
        .find(|l| l.contains("INIT REPORT(durationMs:"))?;
    let number = line
        .split("durationMs:")
        .nth(1)?
        .trim()
        .trim_end_matches(')')
        .trim();
    let ms: f64 = number.parse().ok()?;
    Some(Duration::from_secs_f64(ms / 1000.0))
}
