package mandate.authz_test

import rego.v1

import data.mandate.authz

mandate := {"id": "mdt_1", "remaining": {"calls": 3, "amount:EUR": 40}, "uses_remaining": 3}

payment(amount) := {
	"action": "payments.create",
	"resource": {"type": "payment_initiation", "attributes": {"amount": amount, "currency": "EUR"}},
	"mandate": mandate,
	"consume": {"meter": "amount:EUR", "amount": amount, "idempotency_key": "k1"},
}

codes(d) := [r.code | some r in d.reasons]

test_payment_within_budget_allowed if {
	d := authz.decision with input as payment(40)
	d.allow
	d.reasons == []
}

test_payment_above_remaining_budget_denied if {
	d := authz.decision with input as payment(41)
	not d.allow
	codes(d) == ["budget_exceeded"]
}

test_payment_without_consumption_denied if {
	d := authz.decision with input as object.remove(payment(10), ["consume"])
	codes(d) == ["consumption_missing"]
}

test_consumption_of_another_amount_denied if {
	d := authz.decision with input as object.union(payment(10), {"consume": {"meter": "amount:EUR", "amount": 1}})
	codes(d) == ["consumption_missing"]
}

test_payment_without_amount_denied if {
	no_amount := {
		"action": "payments.create",
		"resource": {"type": "payment_initiation", "attributes": {"currency": "EUR"}},
		"mandate": mandate,
		"consume": {"meter": "amount:EUR", "amount": 10},
	}
	d := authz.decision with input as no_amount
	codes(d) == ["amount_missing"]
}

test_no_mandate_denied if {
	d := authz.decision with input as object.remove(payment(10), ["mandate"])
	"mandate_missing" in codes(d)
	not d.allow
}

test_uses_exhausted_denied if {
	d := authz.decision with input as object.union(payment(10), {"mandate": object.union(mandate, {"uses_remaining": 0})})
	codes(d) == ["uses_exhausted"]
}

test_other_action_needs_only_the_mandate if {
	d := authz.decision with input as {"action": "orders.read", "resource": {"type": "order"}, "mandate": mandate}
	d.allow
}

test_budget_of_an_unlimited_currency_is_not_checked_here if {
	d := authz.decision with input as object.union(payment(10), {
		"resource": {"type": "payment_initiation", "attributes": {"amount": 10, "currency": "USD"}},
		"consume": {"meter": "amount:USD", "amount": 10},
	})
	d.allow
}
