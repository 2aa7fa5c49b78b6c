//! DynamoDB's on-demand request units for what the handlers send, counted by DynamoDB's rules
//! (DynamoDB Local's own `ConsumedCapacity` is wrong for transactions: it reports two units
//! for a transaction of any size). A client interceptor records every request's input and
//! every read's answer; the table is read whole before and after each operation, so each
//! written item's size before and after, and its index entries, are known.
//!
//! - Reads: a strongly consistent read is 1 RRU per 4 KB, an eventually consistent one half:
//!   GetItem rounds its item up to 4 KB, Query the sum of the items it read (at least one
//!   unit); a Query of a local index that asks for attributes the index does not project
//!   also reads each item from the table (its size rounded up to 4 KB).
//! - Writes: 1 WRU per 1 KB of the larger of the item's sizes before and after (at least one),
//!   twice that in a transaction, where a condition check counts as a write too; every index
//!   entry written, changed or removed is a write of its own (1 KB units of the entry: index
//!   keys, table keys, projected attributes; an entry whose index key changes, two), twice in
//!   a transaction (as DynamoDB Local counts them).

use aws_sdk_dynamodb::config::interceptors::{
    AfterDeserializationInterceptorContextRef, BeforeSerializationInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::operation::batch_get_item::{BatchGetItemInput, BatchGetItemOutput};
use aws_sdk_dynamodb::operation::batch_write_item::BatchWriteItemInput;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemInput;
use aws_sdk_dynamodb::operation::get_item::{GetItemInput, GetItemOutput};
use aws_sdk_dynamodb::operation::put_item::PutItemInput;
use aws_sdk_dynamodb::operation::query::{QueryInput, QueryOutput};
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsInput;
use aws_sdk_dynamodb::operation::update_item::UpdateItemInput;
use aws_sdk_dynamodb::types::{AttributeValue, ProjectionType, Select};
use serde_json::{json, Value};
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

type Item = HashMap<String, AttributeValue>;

/// Request units of one operation.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Units {
    pub read: f64,
    /// Writes of the table's items.
    pub write_items: f64,
    /// Writes of index entries.
    pub write_indexes: f64,
}

impl Units {
    pub fn write(&self) -> f64 {
        self.write_items + self.write_indexes
    }

    pub fn to_json(self) -> Value {
        json!({
            "rru": self.read,
            "wru": self.write(),
            "wru_items": self.write_items,
            "wru_indexes": self.write_indexes,
        })
    }
}

/// One recorded request.
#[derive(Debug, Clone)]
enum Call {
    /// A read; `sizes` (the items' sizes) arrive with its answer.
    Read {
        consistent: bool,
        /// A Query of a local index fetching unprojected attributes from the table.
        fetches: Option<String>,
        /// Each item read on its own (BatchGetItem), not summed as a Query's.
        per_item: bool,
        sizes: Option<Vec<usize>>,
    },
    Write {
        transactional: bool,
        items: Vec<Written>,
    },
}

#[derive(Debug, Clone)]
struct Written {
    key: Item,
    /// For a put, the item written.
    put: Option<Item>,
    /// A condition check: read and charged as a write, changes nothing.
    check_only: bool,
}

#[derive(Default)]
struct Recorded {
    calls: Vec<Call>,
    /// Reads waiting for their answer, by operation name, in order.
    pending: HashMap<&'static str, VecDeque<usize>>,
}

/// The interceptor: add it to a client's configuration (`attach`).
#[derive(Debug, Clone, Default)]
pub struct UnitMeter(Arc<Mutex<Recorded>>);

impl std::fmt::Debug for Recorded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} calls", self.calls.len())
    }
}

impl UnitMeter {
    /// `client` with this meter among its interceptors.
    pub fn attach(&self, client: &aws_sdk_dynamodb::Client) -> aws_sdk_dynamodb::Client {
        let config = client
            .config()
            .to_builder()
            .interceptor(self.clone())
            .build();
        aws_sdk_dynamodb::Client::from_conf(config)
    }

    fn take(&self) -> Vec<Call> {
        self.0
            .lock()
            .map(|mut r| {
                r.pending.clear();
                std::mem::take(&mut r.calls)
            })
            .unwrap_or_default()
    }

    pub fn reset(&self) {
        self.take();
    }

    fn record(&self, operation: &'static str, call: Call) {
        if let Ok(mut r) = self.0.lock() {
            let index = r.calls.len();
            if matches!(call, Call::Read { .. }) {
                r.pending.entry(operation).or_default().push_back(index);
            }
            r.calls.push(call);
        }
    }

    fn answer(&self, operation: &'static str, sizes: Vec<usize>) {
        if let Ok(mut r) = self.0.lock() {
            let Some(index) = r.pending.get_mut(operation).and_then(VecDeque::pop_front) else {
                return;
            };
            if let Some(Call::Read { sizes: slot, .. }) = r.calls.get_mut(index) {
                *slot = Some(sizes);
            }
        }
    }
}

impl Intercept for UnitMeter {
    fn name(&self) -> &'static str {
        "UnitMeter"
    }

    fn read_before_serialization(
        &self,
        context: &BeforeSerializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        let input = context.input();
        let written = |key: &Item, put: Option<&Item>, check_only: bool| Written {
            key: key.clone(),
            put: put.cloned(),
            check_only,
        };
        if let Some(get) = input.downcast_ref::<GetItemInput>() {
            let call = Call::Read {
                consistent: get.consistent_read == Some(true),
                fetches: None,
                per_item: false,
                sizes: None,
            };
            self.record("GetItem", call);
        } else if let Some(batch) = input.downcast_ref::<BatchGetItemInput>() {
            let consistent = batch
                .request_items
                .iter()
                .flat_map(|tables| tables.values())
                .all(|keys| keys.consistent_read == Some(true));
            let call = Call::Read {
                consistent,
                fetches: None,
                per_item: true,
                sizes: None,
            };
            self.record("BatchGetItem", call);
        } else if let Some(query) = input.downcast_ref::<QueryInput>() {
            let fetches = query
                .index_name
                .clone()
                .filter(|_| query.select == Some(Select::AllAttributes));
            let call = Call::Read {
                consistent: query.consistent_read == Some(true),
                fetches,
                per_item: false,
                sizes: None,
            };
            self.record("Query", call);
        } else if let Some(put) = input.downcast_ref::<PutItemInput>() {
            let item = put.item.clone().unwrap_or_default();
            let items = vec![written(&item, Some(&item), false)];
            self.record(
                "PutItem",
                Call::Write {
                    transactional: false,
                    items,
                },
            );
        } else if let Some(update) = input.downcast_ref::<UpdateItemInput>() {
            let items = vec![written(
                &update.key.clone().unwrap_or_default(),
                None,
                false,
            )];
            self.record(
                "UpdateItem",
                Call::Write {
                    transactional: false,
                    items,
                },
            );
        } else if let Some(delete) = input.downcast_ref::<DeleteItemInput>() {
            let items = vec![written(
                &delete.key.clone().unwrap_or_default(),
                None,
                false,
            )];
            self.record(
                "DeleteItem",
                Call::Write {
                    transactional: false,
                    items,
                },
            );
        } else if let Some(batch) = input.downcast_ref::<BatchWriteItemInput>() {
            let items = batch
                .request_items
                .iter()
                .flatten()
                .flat_map(|(_, requests)| requests)
                .filter_map(|request| {
                    if let Some(put) = &request.put_request {
                        Some(written(&put.item, Some(&put.item), false))
                    } else {
                        request
                            .delete_request
                            .as_ref()
                            .map(|d| written(&d.key, None, false))
                    }
                })
                .collect();
            self.record(
                "BatchWriteItem",
                Call::Write {
                    transactional: false,
                    items,
                },
            );
        } else if let Some(transaction) = input.downcast_ref::<TransactWriteItemsInput>() {
            let items = transaction
                .transact_items
                .iter()
                .flatten()
                .filter_map(|action| {
                    if let Some(put) = &action.put {
                        Some(written(&put.item, Some(&put.item), false))
                    } else if let Some(update) = &action.update {
                        Some(written(&update.key, None, false))
                    } else if let Some(delete) = &action.delete {
                        Some(written(&delete.key, None, false))
                    } else {
                        action
                            .condition_check
                            .as_ref()
                            .map(|check| written(&check.key, None, true))
                    }
                })
                .collect();
            self.record(
                "TransactWriteItems",
                Call::Write {
                    transactional: true,
                    items,
                },
            );
        }
        Ok(())
    }

    fn read_after_deserialization(
        &self,
        context: &AfterDeserializationInterceptorContextRef<'_>,
        _components: &RuntimeComponents,
        _cfg: &mut ConfigBag,
    ) -> Result<(), aws_sdk_dynamodb::error::BoxError> {
        // A failed attempt is retried, or the operation fails: its read is not counted.
        let Ok(output) = context.output_or_error() else {
            return Ok(());
        };
        if let Some(get) = output.downcast_ref::<GetItemOutput>() {
            self.answer("GetItem", get.item.iter().map(item_size).collect());
        } else if let Some(batch) = output.downcast_ref::<BatchGetItemOutput>() {
            let items = batch
                .responses
                .iter()
                .flat_map(|tables| tables.values())
                .flatten();
            self.answer("BatchGetItem", items.map(item_size).collect());
        } else if let Some(query) = output.downcast_ref::<QueryOutput>() {
            self.answer(
                "Query",
                query.items.iter().flatten().map(item_size).collect(),
            );
        }
        Ok(())
    }
}

// ---------- the table: keys, indexes, its items ----------

#[derive(Debug, Clone)]
struct Index {
    name: String,
    local: bool,
    keys: Vec<String>,
    /// `None`: every attribute (`ALL`); else the non-key attributes projected.
    projected: Option<Vec<String>>,
}

/// The table's keys and indexes, and its items at one moment.
pub struct Table {
    keys: Vec<String>,
    indexes: Vec<Index>,
    items: HashMap<String, Item>,
}

impl Table {
    /// The table as it is now: `DescribeTable` and a whole `Scan` (bounded by its size).
    pub async fn read(client: &aws_sdk_dynamodb::Client, table: &str) -> Result<Table, String> {
        let described = client
            .describe_table()
            .table_name(table)
            .send()
            .await
            .map_err(|e| format!("DescribeTable {table}: {e}"))?;
        let description = described.table.ok_or("DescribeTable answered no table")?;
        let names = |schema: &[aws_sdk_dynamodb::types::KeySchemaElement]| -> Vec<String> {
            schema.iter().map(|k| k.attribute_name.clone()).collect()
        };
        let projected = |p: Option<&aws_sdk_dynamodb::types::Projection>| -> Option<Vec<String>> {
            match p.and_then(|p| p.projection_type.clone()) {
                Some(ProjectionType::All) => None,
                _ => Some(
                    p.and_then(|p| p.non_key_attributes.clone())
                        .unwrap_or_default(),
                ),
            }
        };
        let mut indexes = Vec::new();
        for index in description.local_secondary_indexes() {
            indexes.push(Index {
                name: index.index_name.clone().unwrap_or_default(),
                local: true,
                keys: names(index.key_schema()),
                projected: projected(index.projection.as_ref()),
            });
        }
        for index in description.global_secondary_indexes() {
            indexes.push(Index {
                name: index.index_name.clone().unwrap_or_default(),
                local: false,
                keys: names(index.key_schema()),
                projected: projected(index.projection.as_ref()),
            });
        }
        let keys = names(description.key_schema());
        let mut items = HashMap::new();
        let mut pages = client.scan().table_name(table).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| format!("Scan {table}: {e}"))?;
            for item in page.items.unwrap_or_default() {
                items.insert(key_of(&keys, &item), item);
            }
        }
        Ok(Table {
            keys,
            indexes,
            items,
        })
    }

    /// The entry `item` has in `index`, if any: index keys, table keys, projected attributes.
    fn entry(&self, index: &Index, item: &Item) -> Option<Item> {
        if !index.keys.iter().all(|k| item.contains_key(k)) {
            return None;
        }
        Some(
            item.iter()
                .filter(|(name, _)| match &index.projected {
                    None => true,
                    Some(projected) => {
                        index.keys.contains(name)
                            || self.keys.contains(name)
                            || projected.contains(name)
                    }
                })
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        )
    }
}

fn key_of(keys: &[String], item: &Item) -> String {
    keys.iter()
        .map(|k| format!("{:?}", item.get(k)))
        .collect::<Vec<_>>()
        .join("|")
}

/// The request units of what `meter` recorded since its last reset, with the table as it was
/// before (`before`) and after (`after`) those requests.
pub fn units(meter: &UnitMeter, before: &Table, after: &Table) -> Units {
    let mut units = Units::default();
    for call in meter.take() {
        match call {
            Call::Read {
                consistent,
                fetches,
                per_item,
                sizes,
            } => {
                // No answer: the read failed, and is not counted.
                let Some(sizes) = sizes else {
                    continue;
                };
                let scale = if consistent { 1.0 } else { 0.5 };
                let mut read = if per_item {
                    sizes.iter().map(|s| read_units(*s)).sum()
                } else {
                    read_units(sizes.iter().sum())
                };
                // A local index's unprojected attributes: each item read from the table too.
                let fetched = fetches.is_some_and(|name| {
                    before
                        .indexes
                        .iter()
                        .any(|i| i.name == name && i.local && i.projected.is_some())
                });
                if fetched {
                    read += sizes.iter().map(|s| read_units(*s)).sum::<f64>();
                }
                units.read += read * scale;
            }
            Call::Write {
                transactional,
                items,
            } => {
                let scale = if transactional { 2.0 } else { 1.0 };
                for written in items {
                    let key = key_of(&before.keys, &written.key);
                    // A deleted item is absent after; an item put or updated is present.
                    let (old, new) = (before.items.get(&key), after.items.get(&key));
                    let largest = [old, new, written.put.as_ref()]
                        .into_iter()
                        .flatten()
                        .map(item_size)
                        .max()
                        .unwrap_or(0);
                    units.write_items += write_units(largest) * scale;
                    if written.check_only {
                        continue;
                    }
                    for index in &before.indexes {
                        let (was, is) = (
                            old.and_then(|i| before.entry(index, i)),
                            new.and_then(|i| before.entry(index, i)),
                        );
                        let entries = match (&was, &is) {
                            (None, None) => 0.0,
                            (Some(e), None) | (None, Some(e)) => write_units(item_size(e)),
                            (Some(a), Some(b)) => {
                                let moved = index.keys.iter().any(|k| a.get(k) != b.get(k));
                                let size = item_size(a).max(item_size(b));
                                if moved {
                                    2.0 * write_units(size)
                                } else if a != b {
                                    write_units(size)
                                } else {
                                    0.0
                                }
                            }
                        };
                        units.write_indexes += entries * scale;
                    }
                }
            }
        }
    }
    units
}

/// 4 KB read units for `bytes` read, at least one.
fn read_units(bytes: usize) -> f64 {
    bytes.div_ceil(4096).max(1) as f64
}

/// 1 KB write units for an item of `bytes`, at least one.
fn write_units(bytes: usize) -> f64 {
    bytes.div_ceil(1024).max(1) as f64
}

/// An item's size as DynamoDB counts it: each attribute's name and value (UTF-8 strings,
/// binary as is, about one byte per two significant digits of a number plus one, one byte for
/// a boolean or null, three bytes plus one per element for lists and maps).
pub fn item_size(item: &Item) -> usize {
    item.iter().map(|(k, v)| k.len() + value_size(v)).sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(s) => s.len(),
        AttributeValue::N(n) => number_size(n),
        AttributeValue::B(b) => b.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::Ss(set) => set.iter().map(String::len).sum(),
        AttributeValue::Ns(set) => set.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(set) => set.iter().map(|b| b.as_ref().len()).sum(),
        AttributeValue::L(list) => 3 + list.iter().map(|v| value_size(v) + 1).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| k.len() + value_size(v) + 1)
                .sum::<usize>()
        }
        _ => 0,
    }
}

fn number_size(n: &str) -> usize {
    let digits: String = n.chars().filter(char::is_ascii_digit).collect();
    let significant = digits.trim_start_matches('0').trim_end_matches('0').len();
    significant.max(1).div_ceil(2) + 1
}
