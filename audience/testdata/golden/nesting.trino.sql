-- count
SELECT COUNT(*) AS "count"
FROM "analytics"."customers" AS "p"
WHERE ("p"."region" = ?
  AND ("p"."plan" = ?
      OR NOT COALESCE(("p"."lifetime_value" < CAST(? AS DOUBLE)
            AND "p"."marketing_consent" = FALSE), FALSE))
  AND NOT COALESCE("p"."state" = ?, FALSE))

-- members
SELECT "p"."customer_id", "p"."region", "p"."plan"
FROM "analytics"."customers" AS "p"
WHERE ("p"."region" = ?
  AND ("p"."plan" = ?
      OR NOT COALESCE(("p"."lifetime_value" < CAST(? AS DOUBLE)
            AND "p"."marketing_consent" = FALSE), FALSE))
  AND NOT COALESCE("p"."state" = ?, FALSE))
ORDER BY "p"."customer_id"
LIMIT 100

-- args
1: string "NA"
2: string "enterprise"
3: string "100"
4: string "NY"
