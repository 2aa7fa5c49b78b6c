//! IAM policy against calls (issue 31): DynamoDB Local and moto ignore IAM, so a function whose
//! code calls what its `Policies` in template.yaml do not allow would only fail in AWS. Each
//! function's real handler runs with its own recording clients ([`harness::iam_calls`]) through
//! the shipped event and the scenarios that reach its conditional paths ([`scenarios`]); every
//! (function, IAM action, resource) recorded must be allowed by the function's policy as the
//! template states it ([`harness::iam`]).

mod scenarios;

use harness::iam::{allows, Deployment, Statement};
use harness::iam_calls::{iam_actions, Call};
use harness::template::Template;
use serde_json::json;
use std::collections::{BTreeMap, BTreeSet};

/// Functions whose binaries build no AWS client at all (checked against their `main.rs`).
const NO_AWS: [&str; 4] = ["example-whoami", "fallback", "openapi", "settings-page"];

/// Every recorded call the statements do not allow, one line each naming the function, the
/// action, the resource and the operation that needed it.
pub fn gaps(function: &str, statements: &[Statement], calls: &BTreeSet<Call>) -> Vec<String> {
    calls
        .iter()
        .filter(|c| !allows(statements, &c.action, &c.resource))
        .map(|c| {
            format!(
                "{function}: {} on {} (for {}) is not allowed by its Policies in template.yaml",
                c.action, c.resource, c.operation
            )
        })
        .collect()
}

#[tokio::test]
async fn every_call_a_function_makes_is_allowed_by_its_policy() {
    let run = scenarios::run_all().await;
    let deployment = Deployment {
        table: run.table.clone(),
        parameters: BTreeMap::from([("EventBusName".to_owned(), run.bus.clone())]),
    };
    let policies = Template::load().policies(&deployment);

    // Every function of the template is exercised, or builds no client.
    let exercised: BTreeSet<&str> = run.recorders.keys().map(String::as_str).collect();
    for function in policies.keys() {
        if NO_AWS.contains(&function.as_str()) {
            let main = harness::workspace_root()
                .join("functions")
                .join(function)
                .join("src/main.rs");
            let source = std::fs::read_to_string(&main).expect("the function's main.rs");
            for client in [
                "App::from_env",
                "EventBus::from_env",
                "aws_config",
                "aws_sdk",
            ] {
                assert!(
                    !source.contains(client),
                    "{function} builds an AWS client ({client}) but no scenario exercises it"
                );
            }
        } else {
            assert!(
                exercised.contains(function.as_str()),
                "{function} (in template.yaml) has no scenario in tests/integration/iam"
            );
        }
    }

    let mut problems = Vec::new();
    for (function, recorder) in &run.recorders {
        let statements = policies
            .get(function)
            .unwrap_or_else(|| panic!("{function} is not a function of template.yaml"));
        let calls = recorder.calls();
        assert!(!calls.is_empty(), "{function}: no AWS call recorded");
        for line in calls.iter() {
            eprintln!(
                "iam: {function}: {} on {} ({})",
                line.action, line.resource, line.operation
            );
        }
        problems.extend(gaps(function, statements, &calls));
    }
    assert!(
        problems.is_empty(),
        "calls template.yaml does not allow (DynamoDB Local and moto ignore IAM; AWS would refuse them):\n{}",
        problems.join("\n")
    );
}

/// The check can fail: a policy with one action taken out reports exactly that call, and an
/// index or a transaction is held to IAM's rules, not the table's or the operation's name.
#[test]
fn a_policy_missing_an_action_is_reported_by_function_action_and_resource() {
    let deployment = Deployment {
        table: "tokens".into(),
        parameters: BTreeMap::from([("EventBusName".to_owned(), "bus".to_owned())]),
    };
    let policies = Template::load().policies(&deployment);
    let table = harness::iam::table_arn("tokens");
    let recorded = |target: &str, body: serde_json::Value| -> BTreeSet<Call> {
        iam_actions(target, &body).into_iter().collect()
    };

    // The authorizer's GetItem and its last-used UpdateItem are allowed as the template stands.
    let authorizer = &policies["authorizer"];
    let get = recorded(
        "DynamoDB_20120810.GetItem",
        json!({"TableName": "tokens", "Key": {}}),
    );
    let update = recorded(
        "DynamoDB_20120810.UpdateItem",
        json!({"TableName": "tokens", "Key": {}}),
    );
    let both: BTreeSet<Call> = get.union(&update).cloned().collect();
    assert_eq!(gaps("authorizer", authorizer, &both), Vec::<String>::new());

    // Without UpdateItem, exactly that call is reported.
    let mut without: Vec<Statement> = authorizer.clone();
    for statement in &mut without {
        statement.actions.retain(|a| a != "dynamodb:UpdateItem");
    }
    assert_eq!(
        gaps("authorizer", &without, &both),
        vec![format!(
            "authorizer: dynamodb:UpdateItem on {table} (for UpdateItem) is not allowed by its Policies in template.yaml"
        )]
    );

    // A Query of an index needs the index's ARN: the authorizer's table-only grant is not it.
    let query = recorded(
        "DynamoDB_20120810.Query",
        json!({"TableName": "tokens", "IndexName": "sweep"}),
    );
    let found = gaps("authorizer", authorizer, &query);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0].contains("dynamodb:Query on") && found[0].contains("/index/sweep"));

    // A transaction is checked per item kind; the authorizer may not Delete or Put.
    let transaction = recorded(
        "DynamoDB_20120810.TransactWriteItems",
        json!({"TransactItems": [
            {"Delete": {"TableName": "tokens"}},
            {"Update": {"TableName": "tokens"}},
            {"Put": {"TableName": "tokens"}},
            {"ConditionCheck": {"TableName": "tokens"}}
        ]}),
    );
    let actions: BTreeSet<&str> = transaction.iter().map(|c| c.action.as_str()).collect();
    assert_eq!(
        actions,
        BTreeSet::from([
            "dynamodb:ConditionCheckItem",
            "dynamodb:DeleteItem",
            "dynamodb:PutItem",
            "dynamodb:UpdateItem"
        ])
    );
    assert_eq!(gaps("authorizer", authorizer, &transaction).len(), 3);

    // PutEvents is checked against the bus named in each entry (none: the default bus).
    let events = recorded(
        "AWSEvents.PutEvents",
        json!({"Entries": [{"EventBusName": "bus"}, {"Source": "x"}]}),
    );
    let notify = &policies["notify-expiring"];
    let found = gaps("notify-expiring", notify, &events);
    assert_eq!(found.len(), 1, "{found:?}");
    assert!(found[0]
        .contains("events:PutEvents on arn:aws:events:us-east-1:123456789012:event-bus/default"));

    // SAM policy templates expand as samtranslator defines them.
    let template: serde_yaml::Value = serde_yaml::from_str(
        "Resources:\n  F:\n    Type: AWS::Serverless::Function\n    Metadata: {BuildProperties: {Binary: f}}\n    Properties:\n      Policies:\n        - DynamoDBReadPolicy: {TableName: !Ref TokensTable}\n        - EventBridgePutEventsPolicy: {EventBusName: !Ref EventBusName}\n",
    )
    .expect("yaml");
    let policies = Template { root: template }.policies(&deployment);
    let f = &policies["f"];
    assert!(allows(f, "dynamodb:Query", &format!("{table}/index/sweep")));
    assert!(allows(f, "dynamodb:BatchGetItem", &table));
    assert!(!allows(f, "dynamodb:PutItem", &table));
    assert!(allows(f, "events:PutEvents", &harness::iam::bus_arn("bus")));
}
