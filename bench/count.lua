-- Count loop, equivalent to count.iasm: one increment, one ~= test and one
-- conditional backward jump per iteration. Prints 100000000.
local n = 100000000
local i = 0
while i ~= n do
  i = i + 1
end
print(i)
