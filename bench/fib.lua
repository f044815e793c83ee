-- Recursive Fibonacci, equivalent to fib.iasm: fib(27) computed 25 times
-- over and summed. Prints 25 * 196418 = 4910450.
local function fib(n)
  if n < 2 then return n end
  return fib(n - 1) + fib(n - 2)
end

local sum = 0
for _ = 1, 25 do
  sum = sum + fib(27)
end
print(sum)
