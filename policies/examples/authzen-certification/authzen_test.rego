package mandate.authz

import rego.v1

# The decision input Mandate's AuthZEN edge makes of a request (docs/design/authorize.md): subject
# kind from its type, properties as attributes, the action's name and properties, the context with
# Authorize's time (a caller's `time` is replaced), and the raw request under `authzen`.
kind("user") := "human"

kind("agent") := "agent"

kind(type) := "service" if not type in {"user", "agent"}

evaluation(req) := {
	"version": 1,
	"tenant": "certification",
	"subject": {
		"id": req.subject.id,
		"type": req.subject.type,
		"kind": kind(req.subject.type),
		"attributes": object.get(req.subject, "properties", {}),
	},
	"actors": [],
	"action": req.action.name,
	"action_attributes": object.get(req.action, "properties", {}),
	"resource": {
		"type": req.resource.type,
		"id": req.resource.id,
		"attributes": object.get(req.resource, "properties", {}),
	},
	"token": {"scopes": [], "aud": [], "authorization_details": []},
	"context": object.union(object.get(req, "context", {}), {"time": 1751072580000}),
	"authzen": req,
}

evaluate(req) := d if {
	d := decision with input as evaluation(req)
}

# Access Evaluations (batch): top-level subject/action/resource/context are defaults, replaced
# whole by an evaluation's own (C.3.2.7).
batch(req) := [d.allow |
	some item in req.evaluations
	merged := {key: value |
		some key in ["subject", "action", "resource", "context"]
		value := object.get(item, key, object.get(req, key, null))
		value != null
	}
	d := evaluate(merged)
]

# Search, as services/authorize/authzen/search.ts runs it: each candidate of data.mandate.search of
# the searched type takes the searched entity's place, its properties over the request's.
in_place(searched, candidate) := entity if {
	properties := object.union(object.get(searched, "properties", {}), object.get(candidate, "properties", {}))
	count(properties) > 0
	entity := object.union(object.remove(candidate, ["properties"]), {"properties": properties})
}

in_place(searched, candidate) := object.remove(candidate, ["properties"]) if {
	count(object.union(object.get(searched, "properties", {}), object.get(candidate, "properties", {}))) == 0
}

subject_search(req) := [{"type": c.type, "id": c.id} |
	some c in data.mandate.search.subjects
	c.type == req.subject.type
	evaluate(object.union(req, {"subject": in_place(req.subject, c)})).allow
]

resource_search(req) := [{"type": c.type, "id": c.id} |
	some c in data.mandate.search.resources
	c.type == req.resource.type
	evaluate(object.union(req, {"resource": in_place(req.resource, c)})).allow
]

action_search(req) := [{"name": c.name} |
	some c in data.mandate.search.actions
	evaluate(object.union(req, {"action": in_place({}, c)})).allow
]

alice := {"type": "user", "id": "alice"}

bob := {"type": "user", "id": "bob"}

bob_admin := {"type": "user", "id": "bob", "properties": {"role": "admin"}}

record_1 := {"type": "record", "id": "record-1"}

record_2 := {"type": "record", "id": "record-2"}

record_2_archived := {"type": "record", "id": "record-2", "properties": {"status": "archived"}}

read := {"name": "read"}

write := {"name": "write"}

codes(d) := [r.code | some r in d.reasons]

# C.1.4 Core: the four identifier-only decisions

test_rule_1_alice_reads_record_1 if {
	d := evaluate({"subject": alice, "action": read, "resource": record_1})
	d == {"allow": true, "reasons": [], "obligations": []}
}

test_rule_2_alice_writes_record_1 if {
	evaluate({"subject": alice, "action": write, "resource": record_1}).allow
}

test_rule_3_bob_reads_record_1 if {
	evaluate({"subject": bob, "action": read, "resource": record_1}).allow
}

test_rule_4_bob_may_not_write_record_1 if {
	d := evaluate({"subject": bob, "action": write, "resource": record_1})
	not d.allow
	d.reasons == [{"code": "admin_write_live_record", "message": "admins write archived records only"}]
}

# C.1.4 Properties: the four decisions on properties

test_rule_5_alice_may_not_write_archived if {
	d := evaluate({"subject": alice, "action": write, "resource": record_2_archived})
	not d.allow
	d.reasons == [{"code": "record_archived", "message": "only admins write archived records"}]
}

test_rule_5_archived_by_property_not_by_id if {
	# The deny comes from properties.status, whatever the record's id.
	archived_1 := {"type": "record", "id": "record-1", "properties": {"status": "archived"}}
	not evaluate({"subject": alice, "action": write, "resource": archived_1}).allow
	not evaluate({"subject": alice, "action": write, "resource": {"type": "record", "id": "record-9", "properties": {"status": "archived"}}}).allow
}

test_rule_6_admin_writes_archived if {
	evaluate({"subject": bob_admin, "action": write, "resource": record_2_archived}).allow
}

test_rule_6_any_subject_with_role_admin if {
	carol_admin := {"type": "user", "id": "carol", "properties": {"role": "admin"}}
	evaluate({"subject": carol_admin, "action": write, "resource": record_2_archived}).allow
}

test_rule_7_soft_delete_allowed if {
	evaluate({"subject": alice, "action": {"name": "delete", "properties": {"soft": true}}, "resource": record_1}).allow
}

test_rule_8_hard_delete_denied if {
	d := evaluate({"subject": alice, "action": {"name": "delete", "properties": {"soft": false}}, "resource": record_1})
	not d.allow
	d.reasons == [{"code": "hard_delete_denied", "message": "only soft deletes (soft: true) are allowed"}]
}

test_delete_without_soft_is_hard if {
	d := evaluate({"subject": alice, "action": {"name": "delete"}, "resource": record_1})
	codes(d) == ["hard_delete_denied"]
}

test_soft_must_be_the_boolean_true if {
	not evaluate({"subject": alice, "action": {"name": "delete", "properties": {"soft": "true"}}, "resource": record_1}).allow
}

test_action_properties_from_the_raw_request if {
	# An input without action_attributes: the raw AuthZEN request's action.properties are read.
	req := {"subject": alice, "action": {"name": "delete", "properties": {"soft": true}}, "resource": record_1}
	decision.allow with input as object.remove(evaluation(req), ["action_attributes"])
}

# C.1.6: context never changes a fixture decision; extra properties and unknown fields are ignored

test_c_2_2_3_context_does_not_matter if {
	ctx := {"time": "2025-06-27T18:03-07:00", "ip": "192.168.1.1"}
	evaluate({"subject": alice, "action": read, "resource": record_1, "context": ctx}).allow
	not evaluate({"subject": bob, "action": write, "resource": record_1, "context": ctx}).allow
}

test_c_2_2_8_additional_properties if {
	evaluate({
		"subject": {"type": "user", "id": "alice", "properties": {"department": "Sales", "role": "manager"}},
		"action": {"name": "read", "properties": {"method": "GET"}},
		"resource": {"type": "record", "id": "record-1", "properties": {"status": "active", "owner": "bob"}},
	}).allow
}

test_c_2_2_9_unknown_fields if {
	evaluate({"subject": alice, "action": read, "resource": record_1, "foo": "bar", "futureField": {"nested": true}}).allow
}

test_c_2_6_idempotent if {
	req := {"subject": alice, "action": read, "resource": record_1}
	evaluate(req) == evaluate(req)
}

# Unknown entities

test_unknown_subject_denied if {
	d := evaluate({"subject": {"type": "user", "id": "nonexistent-user"}, "action": read, "resource": record_1})
	not d.allow
	codes(d) == ["subject_unknown"]
}

test_unknown_subject_type_denied if {
	d := evaluate({"subject": {"type": "spaceship", "id": "alice"}, "action": read, "resource": record_1})
	codes(d) == ["subject_unknown"]
}

test_unknown_resource_denied if {
	d := evaluate({"subject": alice, "action": read, "resource": {"type": "record", "id": "record-9"}})
	codes(d) == ["resource_unknown"]
	e := evaluate({"subject": alice, "action": read, "resource": {"type": "folder", "id": "record-1"}})
	codes(e) == ["resource_unknown"]
}

test_unknown_action_denied if {
	d := evaluate({"subject": alice, "action": {"name": "launch"}, "resource": record_1})
	not d.allow
	codes(d) == ["action_unknown"]
}

# C.3 Batch (Access Evaluations)

test_c_3_2_2_batch_fixture_decisions if {
	batch({
		"subject": bob,
		"resource": record_1,
		"evaluations": [{"action": read}, {"action": write}],
	}) == [true, false]
}

test_c_3_2_3_batch_resource_properties if {
	batch({
		"subject": alice,
		"action": write,
		"evaluations": [
			{"resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}}},
			{"resource": record_2_archived},
		],
	}) == [true, false]
}

test_c_3_2_4_batch_subject_properties if {
	batch({
		"action": write,
		"resource": record_2_archived,
		"evaluations": [{"subject": alice}, {"subject": bob_admin}],
	}) == [false, true]
}

test_c_3_2_5_batch_fully_specified if {
	batch({"evaluations": [
		{"subject": alice, "action": read, "resource": record_1},
		{"subject": bob, "action": write, "resource": record_1},
	]}) == [true, false]
}

test_c_3_2_7_batch_default_inheritance if {
	batch({
		"subject": alice,
		"action": write,
		"resource": {"type": "record", "id": "record-1", "properties": {"status": "active"}},
		"evaluations": [{}, {"resource": record_2_archived}],
	}) == [true, false]
}

# C.4 Search: the candidates in data.mandate.search

test_s1_subject_search if {
	results := subject_search({"subject": {"type": "user"}, "action": read, "resource": record_1})
	{"type": "user", "id": "alice"} in results
	{"type": "user", "id": "bob"} in results
}

test_c_4_2_3_subject_search_ignores_subject_id if {
	with_id := subject_search({"subject": alice, "action": read, "resource": record_1})
	with_id == subject_search({"subject": {"type": "user"}, "action": read, "resource": record_1})
	{"type": "user", "id": "bob"} in with_id
}

test_s2_resource_search if {
	results := resource_search({"subject": alice, "action": read, "resource": {"type": "record"}})
	{"type": "record", "id": "record-1"} in results
	results == resource_search({"subject": alice, "action": read, "resource": record_1})
}

test_s3_action_search if {
	results := action_search({"subject": alice, "resource": record_1})
	{"name": "read"} in results
	{"name": "write"} in results
}

test_s4_subject_search_with_resource_properties if {
	results := subject_search({"subject": {"type": "user"}, "action": write, "resource": record_2_archived})
	{"type": "user", "id": "bob"} in results
	not {"type": "user", "id": "alice"} in results
}

test_s5_resource_search_with_subject_properties if {
	results := resource_search({"subject": bob_admin, "action": write, "resource": {"type": "record"}})
	{"type": "record", "id": "record-2"} in results
}

test_s6_action_search_with_properties if {
	results := action_search({"subject": bob_admin, "resource": record_2_archived})
	{"name": "write"} in results
}

test_c_4_6_1_unknown_subject_empty_results if {
	action_search({"subject": {"type": "user", "id": "nonexistent-user"}, "resource": record_1}) == []
}

test_c_4_6_2_unknown_type_empty_results if {
	subject_search({"subject": {"type": "spaceship"}, "action": read, "resource": record_1}) == []
	resource_search({"subject": alice, "action": read, "resource": {"type": "spaceship"}}) == []
}

test_search_with_identifiers_only if {
	# Without the candidates' properties the fixture's own apply: the same results.
	candidates := {
		"subjects": [{"type": "user", "id": "alice"}, {"type": "user", "id": "bob"}],
		"resources": [{"type": "record", "id": "record-1"}, {"type": "record", "id": "record-2"}],
		"actions": data.mandate.search.actions,
	}
	s4 := subject_search({"subject": {"type": "user"}, "action": write, "resource": record_2_archived}) with data.mandate.search as candidates
	s4 == [{"type": "user", "id": "bob"}]
	s5 := resource_search({"subject": bob_admin, "action": write, "resource": {"type": "record"}}) with data.mandate.search as candidates
	s5 == [{"type": "record", "id": "record-2"}]
}

test_search_candidates_are_complete if {
	count(data.mandate.search.subjects) == 2
	count(data.mandate.search.resources) == 2
	{c.name | some c in data.mandate.search.actions} == {"read", "write", "delete"}
}
