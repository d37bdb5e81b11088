use serde_json::{json, Value};

use super::*;

/// A stored response's texts: (input items, response object).
fn stored(input: Value, output: Value) -> (String, String) {
    (
        input.to_string(),
        json!({"id": "resp_1", "object": "response", "output": output}).to_string(),
    )
}

fn turns(stored: &[(String, String)]) -> Vec<Turn<'_>> {
    stored
        .iter()
        .map(|(input, response)| Turn { input, response })
        .collect()
}

fn items(body: Value) -> Vec<Value> {
    serde_json::from_str(&input_items(body.to_string().as_bytes()).unwrap()).unwrap()
}

#[test]
fn a_string_input_is_one_user_message_with_an_id() {
    let got = items(json!({"model": "m", "input": "hello"}));
    assert_eq!(got.len(), 1);
    assert_eq!(got[0]["type"], "message");
    assert_eq!(got[0]["role"], "user");
    assert_eq!(
        got[0]["content"],
        json!([{"type": "input_text", "text": "hello"}])
    );
    assert!(got[0]["id"].as_str().unwrap().starts_with("msg_"));
}

#[test]
fn items_keep_their_ids_and_get_one_when_they_have_none() {
    let got = items(json!({"input": [
        {"role": "user", "content": "hi"},
        {"type": "function_call_output", "call_id": "c1", "output": "sunny"},
        {"type": "message", "role": "user", "content": "x", "id": "msg_mine"},
        {"role": "assistant", "content": "said"},
    ]}));
    assert_eq!(
        got[3]["content"],
        json!([{"type": "output_text", "text": "said"}])
    );
    assert_eq!(got[0]["type"], "message", "the easy form gets its type");
    assert_eq!(
        got[0]["content"],
        json!([{"type": "input_text", "text": "hi"}])
    );
    assert!(got[0]["id"].as_str().unwrap().starts_with("msg_"));
    assert!(got[1]["id"].as_str().unwrap().starts_with("fco_"));
    assert_eq!(got[2]["id"], "msg_mine");
    assert_ne!(
        got[0]["id"],
        items(json!({"input": "hi"}))[0]["id"],
        "ids are unique"
    );
}

#[test]
fn a_bad_input_is_a_400_naming_it() {
    let e = input_items(br#"{"input": 5}"#).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("input"));
}

#[test]
fn a_continuation_carries_the_whole_conversation_in_order() {
    let first = stored(
        json!([{"type": "message", "role": "user", "content": "q1", "id": "msg_a"}]),
        json!([
            {"type": "reasoning", "id": "rs_1", "encrypted_content": "cai1.x", "summary": []},
            {"type": "function_call", "id": "fc_1", "call_id": "c1", "name": "f", "arguments": "{}"},
        ]),
    );
    let second = stored(
        json!([{"type": "function_call_output", "call_id": "c1", "output": "ok", "id": "fco_b"}]),
        json!([{"type": "message", "role": "assistant", "id": "msg_c",
                "content": [{"type": "output_text", "text": "a1"}]}]),
    );
    let history = history(&turns(&[first, second])).unwrap();
    let ids: Vec<&str> = history.iter().map(|i| i["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["msg_a", "rs_1", "fc_1", "fco_b", "msg_c"]);

    let body = json!({"model": "m", "previous_response_id": "resp_1", "input": "q2",
                      "instructions": "be brief"});
    let out: Value =
        serde_json::from_slice(&continued(body.to_string().as_bytes(), history).unwrap()).unwrap();
    assert!(out.get("previous_response_id").is_none());
    assert_eq!(
        out["instructions"], "be brief",
        "the request's own fields stay"
    );
    let input = out["input"].as_array().unwrap();
    assert_eq!(input.len(), 6);
    assert_eq!(
        input[1]["encrypted_content"], "cai1.x",
        "signed reasoning rides along"
    );
    assert_eq!(input[5]["content"][0]["text"], "q2");
}

#[test]
fn a_conversation_past_the_bound_is_refused() {
    let (_, response) = stored(json!([]), json!([]));
    let input = format!("[\"{}\"]", "x".repeat(MAX_HISTORY_BYTES));
    let e = history(&turns(&[(input, response)])).unwrap_err();
    assert_eq!(e.param.as_deref(), Some("previous_response_id"));
}

#[test]
fn the_final_object_is_found_in_json_and_in_the_terminal_event() {
    let object = json!({"id": "resp_9", "object": "response", "output": []});
    let json_answer = object.to_string();
    assert_eq!(
        final_object(json_answer.as_bytes(), false),
        Some(("resp_9".into(), json_answer.clone()))
    );
    let events = format!(
        "event: response.output_text.done\ndata: {{\"type\":\"x\"}}\n\n\
         event: response.completed\ndata: {{\"type\":\"response.completed\",\"response\":{json_answer},\"sequence_number\":7}}\n\n"
    );
    assert_eq!(
        final_object(events.as_bytes(), true),
        Some(("resp_9".into(), json_answer))
    );
    let incomplete = "event: response.incomplete\ndata: {\"response\":{\"id\":\"resp_2\"}}\n\n";
    assert_eq!(
        final_object(incomplete.as_bytes(), true).unwrap().0,
        "resp_2"
    );
    assert_eq!(
        final_object(
            b"event: response.created\ndata: {\"response\":{\"id\":\"r\"}}\n\n",
            true
        ),
        None,
        "only a terminal event ends the answer"
    );
}

#[test]
fn input_items_pages_newest_first_by_default() {
    let s = json!([{"id": "a"}, {"id": "b"}, {"id": "c"}]).to_string();
    let page = input_items_page(&s, None).unwrap();
    assert_eq!(page["object"], "list");
    assert_eq!(page["data"], json!([{"id": "c"}, {"id": "b"}, {"id": "a"}]));
    assert_eq!(
        (page["first_id"].as_str(), page["last_id"].as_str()),
        (Some("c"), Some("a"))
    );
    assert_eq!(page["has_more"], false);

    let page = input_items_page(&s, Some("order=asc&limit=2")).unwrap();
    assert_eq!(page["data"], json!([{"id": "a"}, {"id": "b"}]));
    assert_eq!(page["has_more"], true);
    let page = input_items_page(&s, Some("order=asc&limit=2&after=b")).unwrap();
    assert_eq!(page["data"], json!([{"id": "c"}]));
    assert_eq!(page["has_more"], false);

    for bad in ["limit=0", "limit=101", "order=up", "after=zz"] {
        assert!(input_items_page(&s, Some(bad)).is_err(), "{bad}");
    }
}
