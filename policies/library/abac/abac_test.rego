package mandate.authz

import rego.v1

subject(id, attributes) := {"id": id, "kind": "human", "attributes": attributes}

request(who, action, attributes) := {
	"version": 1,
	"tenant": "acme",
	"subject": who,
	"actors": [],
	"action": action,
	"resource": {"type": "document", "id": "d-1", "attributes": attributes},
	"token": {"scopes": [], "aud": [], "authorization_details": []},
	"context": {"time": 1000},
}

doc := {"owner": "alice", "department": "sales", "classification": "internal"}

alice := subject("alice", {"department": "sales", "clearance": "internal"})

bob := subject("bob", {"department": "sales", "clearance": "confidential"})

carol := subject("carol", {"department": "legal", "clearance": "secret"})

codes(d) := [r.code | some r in d.reasons]

# Owner

test_owner_may_do_owner_actions if {
	decision.allow with input as request(alice, "documents.read", doc)
	decision.allow with input as request(alice, "documents.delete", doc)
	decision.allow with input as request(alice, "documents.share", doc)
}

test_owner_allowed_decision_shape if {
	d := decision with input as request(alice, "documents.delete", doc)
	d == {"allow": true, "reasons": [], "obligations": []}
}

test_owner_outside_owner_actions if {
	d := decision with input as request(alice, "invoices.read", doc)
	not d.allow
	d.reasons == [{"code": "action_not_covered", "message": "no attribute rule covers invoices.read"}]
}

# Department

test_department_member_may_read_and_comment if {
	decision.allow with input as request(bob, "documents.read", doc)
	decision.allow with input as request(bob, "documents.comment", doc)
}

test_department_member_may_not_delete if {
	d := decision with input as request(bob, "documents.delete", doc)
	not d.allow
	d.reasons == [{"code": "owner_required", "message": "only the resource's owner may documents.delete"}]
}

test_other_department_may_not_read if {
	d := decision with input as request(carol, "documents.read", doc)
	not d.allow
	d.reasons == [{"code": "department_mismatch", "message": "documents.read is for members of the resource's department (or its owner)"}]
}

test_resource_without_department_only_owner if {
	d := decision with input as request(bob, "documents.read", object.remove(doc, ["department"]))
	codes(d) == ["department_mismatch"]
	decision.allow with input as request(alice, "documents.read", object.remove(doc, ["department"]))
}

test_subject_without_department if {
	d := decision with input as request(subject("dan", {"clearance": "secret"}), "documents.read", doc)
	codes(d) == ["department_mismatch"]
}

test_owner_of_another_department_document if {
	d := decision with input as request(alice, "documents.delete", object.union(doc, {"department": "legal"}))
	d.allow
}

# Classification against clearance

test_clearance_insufficient if {
	d := decision with input as request(alice, "documents.read", object.union(doc, {"classification": "confidential"}))
	not d.allow
	d.reasons == [{"code": "clearance_insufficient", "message": "the resource is classified 2, above the subject's clearance 1"}]
}

test_clearance_applies_to_the_owner_too if {
	d := decision with input as request(alice, "documents.delete", object.union(doc, {"classification": "secret"}))
	codes(d) == ["clearance_insufficient"]
}

test_clearance_equal_allows if {
	decision.allow with input as request(bob, "documents.read", object.union(doc, {"classification": "confidential"}))
}

test_numeric_levels if {
	decision.allow with input as request(subject("bob", {"department": "sales", "clearance": 2}), "documents.read", object.union(doc, {"classification": 2}))
	d := decision with input as request(subject("bob", {"department": "sales", "clearance": 1}), "documents.read", object.union(doc, {"classification": "confidential"}))
	codes(d) == ["clearance_insufficient"]
}

test_unclassified_resource_is_public if {
	decision.allow with input as request(subject("bob", {"department": "sales"}), "documents.read", object.remove(doc, ["classification"]))
}

test_no_clearance_reads_only_public if {
	d := decision with input as request(subject("bob", {"department": "sales"}), "documents.read", doc)
	codes(d) == ["clearance_insufficient"]
}

test_unknown_clearance_counts_as_zero if {
	d := decision with input as request(subject("bob", {"department": "sales", "clearance": "cosmic"}), "documents.read", doc)
	codes(d) == ["clearance_insufficient"]
}

test_unknown_classification if {
	d := decision with input as request(carol, "documents.read", object.union(doc, {"classification": "ultra", "department": "legal"}))
	not d.allow
	d.reasons == [{"code": "classification_unknown", "message": "the resource's classification ultra is not a known level"}]
}

# Several reasons at once, sorted by code

test_reasons_accumulate if {
	d := decision with input as request(carol, "documents.delete", object.union(doc, {"classification": "top"}))
	codes(d) == ["classification_unknown", "owner_required"]
}

# Data drives the rules

test_rules_from_other_data if {
	r := request(bob, "documents.delete", doc)
	decision.allow with input as r with data.abac.department_actions as ["documents.*"]
	not decision.allow with input as r with data.abac.department_actions as []
}

test_no_rules_no_access if {
	d := decision with input as request(alice, "documents.read", doc) with data.abac as {"levels": {"internal": 1}}
	codes(d) == ["action_not_covered"]
}
