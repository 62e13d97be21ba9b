-- count
SELECT COUNT(*) AS "count"
FROM "customers" AS "p"
WHERE TRUE

-- members
SELECT "p"."customer_id"
FROM "customers" AS "p"
WHERE TRUE
ORDER BY "p"."customer_id"
LIMIT 100

-- args
