//! Item 5: DynamoDB requests per operation, counted by the client while the real handlers run
//! in-process against DynamoDB Local, next to the fewest the key design allows; and their
//! on-demand request units (`units.rs`), which the cost step (item 10) prices. The routes are
//! here, the authorizer and the scheduled and event-driven functions in `operations.rs`.

use crate::support::{
    as_user, conditions, create_pat_body, event, first_page, fresh_env, request,
    seed_get_event_token, seed_many, seed_one, with_path_parameter, Env, Options, Section, Verdict,
};
use crate::units::{units, Table, UnitMeter, Units};
use chrono::Duration;
use serde_json::json;
use shared::store::Store;
use std::collections::BTreeMap;
use std::future::Future;

/// The operations counted so far, in the table's order, and the meter of their request units.
#[derive(Default)]
pub struct Counter {
    meter: UnitMeter,
    rows: Vec<Counted>,
}

struct Counted {
    operation: String,
    requests: BTreeMap<String, u64>,
    units: Units,
    minimum: u64,
    why: String,
}

impl Counter {
    /// Runs `call` as the row `operation` (`minimum` requests, because `why`): the requests
    /// `env`'s client sends meanwhile, and their units from the table before and after.
    pub async fn row<T>(
        &mut self,
        env: &Env,
        operation: impl Into<String>,
        minimum: u64,
        why: impl Into<String>,
        call: impl Future<Output = T>,
    ) -> Result<T, String> {
        let before = Table::read(&env.client, env.table()).await?;
        env.requests.reset();
        self.meter.reset();
        let out = call.await;
        let requests = env.requests.snapshot();
        let after = Table::read(&env.client, env.table()).await?;
        self.rows.push(Counted {
            operation: operation.into(),
            requests,
            units: units(&self.meter, &before, &after),
            minimum,
            why: why.into(),
        });
        Ok(out)
    }

    /// [`Counter::row`] of an HTTP handler, which must answer `want`.
    pub async fn route(
        &mut self,
        env: &Env,
        (operation, want): (&str, u16),
        minimum: u64,
        why: impl Into<String>,
        call: impl Future<Output = lambda_http::Response<lambda_http::Body>>,
    ) -> Result<(), String> {
        let got = self.row(env, operation, minimum, why, call).await?.status();
        if got != want {
            return Err(format!("{operation} answered {got}, expected {want}"));
        }
        Ok(())
    }

    /// `env` with its app's client also recording what the meter needs (the table reads of
    /// `count` go through `env.client`, which it does not see).
    pub fn metered(&self, mut env: Env) -> Env {
        let table = env.table().to_owned();
        env.app.store = Store::new(self.meter.attach(&env.client), table);
        env
    }
}

pub async fn run(_options: &Options) -> Result<Section, String> {
    let mut section = Section::new(5, "DynamoDB requests per operation");
    conditions(&mut section);
    let mut counter = Counter::default();
    let env = counter.metered(fresh_env(&[]).await);
    let app = &env.app;

    let create = request(&as_user(event("create-app-token.json"), "c1"));
    counter
        .route(
            &env,
            ("create (Quay)", 201),
            2,
            "UpdateItem issues the Unleash number (a transaction cannot return a new value, and \
             the number is part of the item) + one TransactWriteItems: counter under the cap, \
             token, lookup record",
            shared::quay::create_app_token(app, create),
        )
        .await?;
    let mut create_pat = as_user(event("create-pat.json"), "c2");
    create_pat["body"] = create_pat_body("deploy bot").into();
    counter
        .route(
            &env,
            ("create (Unleash, user with < 100 tokens)", 201),
            3,
            "as Quay's, plus one Query of the user's tokens to refuse a description already in \
             use (Unleash's 409). With a description-keyed item in the transaction it would be 2",
            shared::unleash::create_pat(app, request(&create_pat)),
        )
        .await?;

    // list, per page
    harness::dynamodb_local::progress("bench: requests: seeding 360 tokens");
    let month = Duration::days(30);
    let lists = [("list-10", 10u64), ("list-100", 100), ("list-250", 250)];
    for (user, n) in lists {
        seed_many(&app.store, &[user.to_owned()], n as usize, month, None).await?;
    }
    for (user, n) in lists {
        let list = first_page(as_user(event("list-app-tokens.json"), user));
        counter
            .route(
                &env,
                (
                    &format!("list of {n} (Quay; Unleash's is the same Query)"),
                    200,
                ),
                1,
                format!(
                    "one strongly consistent Query per 1 MB page; {n} tokens are about {} KB",
                    n * 3 / 10
                ),
                shared::quay::list_app_tokens(app, request(&list)),
            )
            .await?;
    }

    let get_event = seed_get_event_token(&app.store).await?;
    counter
        .route(
            &env,
            ("get", 200),
            1,
            "one strongly consistent GetItem by (user, uuid)",
            shared::quay::get_app_token(app, request(&get_event)),
        )
        .await?;

    // rotate: the get event's token by uuid, a numbered one by id, a PAT rotating itself
    let rotate = request(&as_user(event("rotate-app-token.json"), "alice"));
    counter
        .route(
            &env,
            ("rotate (Quay, by uuid)", 200),
            2,
            "GetItem for the current digest, then one TransactWriteItems: the token's new digest \
             (on the condition it is still the one read), the new lookup record, the old one's \
             end of grace",
            shared::rotation::rotate_app_token(app, rotate),
        )
        .await?;
    let (numbered, _) = seed_one(&app.store, "rot", month).await?;
    let rotate_pat = with_path_parameter(
        as_user(event("rotate-pat.json"), "rot"),
        "id",
        &numbered.number.to_string(),
    );
    counter
        .route(
            &env,
            ("rotate (Unleash, by integer id)", 200),
            2,
            "Query of `by_number` (the whole token), then the same one TransactWriteItems",
            shared::rotation::rotate_pat(app, request(&rotate_pat)),
        )
        .await?;
    let (_, own) = seed_one(&app.store, "self", Duration::days(1)).await?;
    let mut rotate_self = event("rotate-self.json");
    rotate_self["headers"]["authorization"] = format!("Bearer {}", own.expose()).into();
    counter
        .route(
            &env,
            ("rotate itself (a PAT's first use in the window)", 200),
            4,
            "authenticating: GetItem of the lookup record + its `last used` TransactWriteItems; \
             then the rotation's GetItem + TransactWriteItems",
            shared::rotation::rotate_self(app, request(&rotate_self)),
        )
        .await?;

    // the audit log: the entries the calls above wrote, a page
    let logs = request(&as_user(event("list-user-logs.json"), "alice"));
    counter
        .route(
            &env,
            ("audit log, one page of 20", 200),
            1,
            "one strongly consistent Query of the user's `LOG#` range, newest first; every \
             change wrote its entry inside its own transaction (no extra request)",
            shared::logs::list_user_logs(app, logs),
        )
        .await?;

    // revoke
    let revoke = request(&as_user(event("revoke-app-token.json"), "alice"));
    counter
        .route(
            &env,
            ("revoke (Quay)", 204),
            2,
            "GetItem, because the lookup record's key is the secret's digest, which only the \
             token item knows; then one TransactWriteItems deleting both and uncounting",
            shared::quay::revoke_app_token(app, revoke),
        )
        .await?;
    let (numbered, _) = seed_one(&app.store, "del", month).await?;
    let delete = with_path_parameter(
        as_user(event("delete-pat.json"), "del"),
        "id",
        &numbered.number.to_string(),
    );
    counter
        .route(
            &env,
            ("revoke (Unleash, by integer id)", 200),
            2,
            "Query of the `by_number` index, which projects the secret's digest and the \
             expiry (template.yaml), then the same one TransactWriteItems as Quay's revoke",
            shared::unleash::delete_pat(app, request(&delete)),
        )
        .await?;

    crate::operations::count(&mut counter, &env).await?;
    env.drop_table().await;

    write(&mut section, &counter.rows);
    Ok(section)
}

/// The table, the verdicts and the figures the cost step reads.
fn write(section: &mut Section, rows: &[Counted]) {
    section.paragraph(
        "Requests counted by the SDK client itself (an interceptor counts every request sent, \
         retries included) while the real handlers (`shared::quay`, `shared::unleash`, \
         `shared::authorizer`, `shared::cleanup`) run in-process against DynamoDB Local, with \
         the default configuration (no `Limit`: DynamoDB's 1 MB pages). *Minimum*: the fewest requests the key \
         design (README, \"The table\") allows for the operation. *RRU* and *WRU*: the \
         on-demand read and write request units DynamoDB would bill for them, counted from each \
         request's items (`benches/lambda/units.rs`): 1 RRU per 4 KB read strongly consistent \
         (half eventually consistent; a Query's items summed, a local index's unprojected \
         attributes read from the table per item), 1 WRU per 1 KB of the larger of an item's \
         sizes before and after, twice in a transaction (condition checks included), and as \
         much again for every index entry written or removed (*indexes*).",
    );
    let mut table = Vec::new();
    let mut data = serde_json::Map::new();
    for row in rows {
        let total: u64 = row.requests.values().sum();
        let units = row.units;
        let calls = if row.requests.is_empty() {
            "none".to_owned()
        } else {
            row.requests
                .iter()
                .map(|(op, n)| format!("{n} {op}"))
                .collect::<Vec<_>>()
                .join(" + ")
        };
        let ok = total == row.minimum;
        table.push(vec![
            row.operation.clone(),
            calls,
            total.to_string(),
            row.minimum.to_string(),
            crate::support::met(Some(ok)).to_owned(),
            format!("{}", units.read),
            if units.write_indexes > 0.0 {
                format!("{} (indexes {})", units.write(), units.write_indexes)
            } else {
                units.write().to_string()
            },
            row.why.clone(),
        ]);
        let mut figures = units.to_json();
        figures["requests"] = json!(row.requests);
        data.insert(row.operation.clone(), figures);
        section.verdicts.push(Verdict::new(
            format!("requests, {}", row.operation),
            format!("{} (minimum)", row.minimum),
            total.to_string(),
            Some(ok),
        ));
    }
    section.table(
        &[
            "operation",
            "requests",
            "total",
            "minimum",
            "",
            "RRU",
            "WRU",
            "why that minimum",
        ],
        &table,
    );
    section.data = Some(json!({ "operations": data }));
    let over = |prefix: &str| {
        rows.iter().any(|r| {
            r.operation.starts_with(prefix) && r.requests.values().sum::<u64>() > r.minimum
        })
    };
    let mut notes = Vec::new();
    if over("list") || over("cleanup") {
        notes.push(
            "- **Lists and the sweep** read whole 1 MB pages (about 3,000 tokens, or 7,000 \
             index items). More requests than the minimum mean more pages than that, or a \
             `Limit` set with `Store::with_page_size`.",
        );
    }
    if over("revoke (Unleash") {
        notes.push(
            "- **Unleash's revoke by id** read the token again: the table's `by_number` index \
             does not project `digest` and `expires_ms` (a table created before template.yaml \
             did).",
        );
    }
    if !notes.is_empty() {
        section.paragraph(format!(
            "Where a count is above the minimum:\n\n{}",
            notes.join("\n")
        ));
    }
}
