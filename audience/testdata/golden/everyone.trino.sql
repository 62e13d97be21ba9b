-- count
SELECT COUNT(*) AS "count"
FROM "analytics"."customers" AS "p"
WHERE TRUE

-- members
SELECT "p"."customer_id"
FROM "analytics"."customers" AS "p"
WHERE TRUE
ORDER BY "p"."customer_id"
LIMIT 100

-- args
