-- count
SELECT COUNT(*) AS "count"
FROM "customers" AS "p"
WHERE ("p"."region" = ?
  AND ("p"."plan" = ?
      OR NOT COALESCE(("p"."lifetime_value" < ?
            AND "p"."marketing_consent" = FALSE), FALSE))
  AND NOT COALESCE("p"."state" = ?, FALSE))

-- members
SELECT "p"."customer_id", "p"."region", "p"."plan"
FROM "customers" AS "p"
WHERE ("p"."region" = ?
  AND ("p"."plan" = ?
      OR NOT COALESCE(("p"."lifetime_value" < ?
            AND "p"."marketing_consent" = FALSE), FALSE))
  AND NOT COALESCE("p"."state" = ?, FALSE))
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "NA"
2: string "enterprise"
3: float64 100
4: string "NY"
