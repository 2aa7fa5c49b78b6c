//! A fresh table from `template.yaml` on this process's DynamoDB Local, and an `App` over it:
//! what every integration test and every benchmark against DynamoDB Local starts from.

use crate::dynamodb_local::RequestCounter;
use crate::template::Template;
use crate::DynamoLocal;
use shared::config::Config;
use shared::store::Store;
use shared::App;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};

pub struct FreshApp {
    pub app: App,
    /// The app's client: it counts every request it sends in `requests`.
    pub client: aws_sdk_dynamodb::Client,
    pub requests: RequestCounter,
}

impl FreshApp {
    pub fn table(&self) -> &str {
        self.app.store.table()
    }

    /// Drops the table, so DynamoDB Local frees its items.
    pub async fn drop_table(self) {
        let _ = self
            .client
            .delete_table()
            .table_name(self.table())
            .send()
            .await;
    }
}

static TABLES: AtomicU32 = AtomicU32::new(0);

/// A new table named `<prefix>-<pid>-<n>`, and config from `vars` over the defaults (with
/// `TABLE_NAME` set to the new table). The request counter starts at zero.
pub async fn fresh_app(prefix: &str, vars: &[(&str, &str)]) -> FreshApp {
    let local = DynamoLocal::shared();
    let (client, requests) = local.client().await;
    let table = format!(
        "{prefix}-{}-{}",
        std::process::id(),
        TABLES.fetch_add(1, Ordering::SeqCst)
    );
    Template::load().create_table(&client, &table).await;
    let mut map: HashMap<String, String> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    map.insert("TABLE_NAME".into(), table.clone());
    let config = Config::from_map(&map).expect("config from the given variables");
    let store = Store::new(client.clone(), table);
    requests.reset();
    FreshApp {
        app: App::new(store, config, None),
        client,
        requests,
    }
}
