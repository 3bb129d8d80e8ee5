//! The stable codes of diagnostics ([`Code`]).

use std::fmt;

use crate::diagnostics::Severity;

/// Every diagnostic mlpolicy reports, by its stable code: `E…` an error, `W…` a warning. Each
/// has a section in `docs/diagnostics.md` with its cause and fix (a test checks both ways).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Code {
    /// cannot open the configuration directory
    E0001,
    /// no `.mlp` files
    E0002,
    /// a file cannot be read
    E0003,
    /// a file links outside the configuration
    E0004,
    /// a file is too large
    E0005,
    /// `fmt` cannot write a file
    E0006,
    /// unexpected token
    E0010,
    /// unterminated string
    E0011,
    /// invalid escape
    E0012,
    /// nesting too deep
    E0013,
    /// keyword used as a name
    E0014,
    /// invalid name
    E0015,
    /// integer out of range
    E0016,
    /// interpolation in a map key
    E0017,
    /// YAML error
    E0020,
    /// unknown setting
    E0021,
    /// invalid setting value
    E0022,
    /// invalid `--var`
    E0023,
    /// `--vars` file problem
    E0024,
    /// unknown reference
    E0101,
    /// duplicate address
    E0102,
    /// unknown variable
    E0103,
    /// unknown subscription alias
    E0104,
    /// no such instance
    E0105,
    /// unknown name
    E0106,
    /// unknown function or wrong arguments
    E0107,
    /// invalid index or attribute
    E0108,
    /// `let` refers to itself
    E0109,
    /// interpolation is not a string
    E0110,
    /// type error in an operator
    E0111,
    /// invalid `for` loop
    E0112,
    /// unknown declaration kind
    E0113,
    /// duplicate `let`
    E0114,
    /// misplaced block
    E0115,
    /// a string is too long
    E0116,
    /// a list or map is too large
    E0117,
    /// `for` loops make too many instances
    E0118,
    /// too many objects
    E0119,
    /// evaluation exceeds its budget
    E0120,
    /// invalid `moved` block
    E0121,
    /// `moved` to an address that is not declared
    E0122,
    /// `moved` from an address that is still declared
    E0123,
    /// `moved` blocks chain, cycle or repeat
    E0124,
    /// unknown attribute
    E0201,
    /// missing required attribute
    E0202,
    /// wrong type
    E0203,
    /// attribute set twice
    E0204,
    /// invalid ARM id
    E0206,
    /// invalid user principal name
    E0207,
    /// invalid federated issuer
    E0208,
    /// invalid federated subject
    E0209,
    /// more than 20 federated credentials
    E0210,
    /// duplicate Azure name
    E0211,
    /// invalid Azure name
    E0212,
    /// not a principal
    E0213,
    /// not a scope
    E0214,
    /// federated audiences
    E0215,
    /// repeated issuer and subject
    E0216,
    /// unknown policy subject
    E0218,
    /// unknown attribute in a policy condition
    E0219,
    /// invalid policy
    E0220,
    /// invalid policy attribute
    E0221,
    /// invalid waiver
    E0222,
    /// unknown policy pack
    E0223,
    /// dependency cycle
    E0301,
    /// policy `deny`
    E0401,
    /// reading the tenant failed
    E0501,
    /// a named principal does not exist
    E0502,
    /// a display name matches several objects
    E0503,
    /// unknown role
    E0504,
    /// `prevent_destroy` blocks the plan
    E0505,
    /// replacement or deletion needs approval
    E0506,
    /// mass removal needs approval
    E0507,
    /// a group to adopt is ambiguous
    E0508,
    /// the plan exceeds Azure's role-assignment limit
    E0509,
    /// cannot connect to Azure
    E0601,
    /// cannot write the plan file
    E0602,
    /// applying an object failed
    E0701,
    /// apply would lock the running principal out
    E0702,
    /// the saved plan is stale
    E0703,
    /// the plan file is altered or not a plan
    E0704,
    /// the audit log cannot be written
    E0705,
    /// the saved plan differs from the re-derived plan
    E0706,
    /// the saved plan's signature is missing or wrong
    E0707,
    /// the export directory cannot be written
    E0801,
    /// the export's scope is invalid
    E0802,
    /// the export is not a valid configuration
    E0803,
    /// unknown principal
    E0901,
    /// unknown scope
    E0902,
    /// invalid `MLPOLICY_NOW`
    E0951,
    /// unknown role name
    W0201,
    /// policy `warn`
    W0401,
    /// condition is not a bool
    W0402,
    /// the plan nears Azure's role-assignment limit
    W0501,
    /// a deletion and a creation look like a rename: a `moved` block is probably meant
    W0502,
    /// objects kept as comments
    W0801,
}

impl Code {
    /// Every code, in order.
    pub const ALL: &[Code] = &[
        Code::E0001,
        Code::E0002,
        Code::E0003,
        Code::E0004,
        Code::E0005,
        Code::E0006,
        Code::E0010,
        Code::E0011,
        Code::E0012,
        Code::E0013,
        Code::E0014,
        Code::E0015,
        Code::E0016,
        Code::E0017,
        Code::E0020,
        Code::E0021,
        Code::E0022,
        Code::E0023,
        Code::E0024,
        Code::E0101,
        Code::E0102,
        Code::E0103,
        Code::E0104,
        Code::E0105,
        Code::E0106,
        Code::E0107,
        Code::E0108,
        Code::E0109,
        Code::E0110,
        Code::E0111,
        Code::E0112,
        Code::E0113,
        Code::E0114,
        Code::E0115,
        Code::E0116,
        Code::E0117,
        Code::E0118,
        Code::E0119,
        Code::E0120,
        Code::E0121,
        Code::E0122,
        Code::E0123,
        Code::E0124,
        Code::E0201,
        Code::E0202,
        Code::E0203,
        Code::E0204,
        Code::E0206,
        Code::E0207,
        Code::E0208,
        Code::E0209,
        Code::E0210,
        Code::E0211,
        Code::E0212,
        Code::E0213,
        Code::E0214,
        Code::E0215,
        Code::E0216,
        Code::E0218,
        Code::E0219,
        Code::E0220,
        Code::E0221,
        Code::E0222,
        Code::E0223,
        Code::E0301,
        Code::E0401,
        Code::E0501,
        Code::E0502,
        Code::E0503,
        Code::E0504,
        Code::E0505,
        Code::E0506,
        Code::E0507,
        Code::E0508,
        Code::E0509,
        Code::E0601,
        Code::E0602,
        Code::E0701,
        Code::E0702,
        Code::E0703,
        Code::E0704,
        Code::E0705,
        Code::E0706,
        Code::E0707,
        Code::E0801,
        Code::E0802,
        Code::E0803,
        Code::E0901,
        Code::E0902,
        Code::E0951,
        Code::W0201,
        Code::W0401,
        Code::W0402,
        Code::W0501,
        Code::W0502,
        Code::W0801,
    ];

    /// The code as it is printed (`E0101`).
    pub fn as_str(self) -> &'static str {
        match self {
            Code::E0001 => "E0001",
            Code::E0002 => "E0002",
            Code::E0003 => "E0003",
            Code::E0004 => "E0004",
            Code::E0005 => "E0005",
            Code::E0006 => "E0006",
            Code::E0010 => "E0010",
            Code::E0011 => "E0011",
            Code::E0012 => "E0012",
            Code::E0013 => "E0013",
            Code::E0014 => "E0014",
            Code::E0015 => "E0015",
            Code::E0016 => "E0016",
            Code::E0017 => "E0017",
            Code::E0020 => "E0020",
            Code::E0021 => "E0021",
            Code::E0022 => "E0022",
            Code::E0023 => "E0023",
            Code::E0024 => "E0024",
            Code::E0101 => "E0101",
            Code::E0102 => "E0102",
            Code::E0103 => "E0103",
            Code::E0104 => "E0104",
            Code::E0105 => "E0105",
            Code::E0106 => "E0106",
            Code::E0107 => "E0107",
            Code::E0108 => "E0108",
            Code::E0109 => "E0109",
            Code::E0110 => "E0110",
            Code::E0111 => "E0111",
            Code::E0112 => "E0112",
            Code::E0113 => "E0113",
            Code::E0114 => "E0114",
            Code::E0115 => "E0115",
            Code::E0116 => "E0116",
            Code::E0117 => "E0117",
            Code::E0118 => "E0118",
            Code::E0119 => "E0119",
            Code::E0120 => "E0120",
            Code::E0121 => "E0121",
            Code::E0122 => "E0122",
            Code::E0123 => "E0123",
            Code::E0124 => "E0124",
            Code::E0201 => "E0201",
            Code::E0202 => "E0202",
            Code::E0203 => "E0203",
            Code::E0204 => "E0204",
            Code::E0206 => "E0206",
            Code::E0207 => "E0207",
            Code::E0208 => "E0208",
            Code::E0209 => "E0209",
            Code::E0210 => "E0210",
            Code::E0211 => "E0211",
            Code::E0212 => "E0212",
            Code::E0213 => "E0213",
            Code::E0214 => "E0214",
            Code::E0215 => "E0215",
            Code::E0216 => "E0216",
            Code::E0218 => "E0218",
            Code::E0219 => "E0219",
            Code::E0220 => "E0220",
            Code::E0221 => "E0221",
            Code::E0222 => "E0222",
            Code::E0223 => "E0223",
            Code::E0301 => "E0301",
            Code::E0401 => "E0401",
            Code::E0501 => "E0501",
            Code::E0502 => "E0502",
            Code::E0503 => "E0503",
            Code::E0504 => "E0504",
            Code::E0505 => "E0505",
            Code::E0506 => "E0506",
            Code::E0507 => "E0507",
            Code::E0508 => "E0508",
            Code::E0509 => "E0509",
            Code::E0601 => "E0601",
            Code::E0602 => "E0602",
            Code::E0701 => "E0701",
            Code::E0702 => "E0702",
            Code::E0703 => "E0703",
            Code::E0704 => "E0704",
            Code::E0705 => "E0705",
            Code::E0706 => "E0706",
            Code::E0707 => "E0707",
            Code::E0801 => "E0801",
            Code::E0802 => "E0802",
            Code::E0803 => "E0803",
            Code::E0901 => "E0901",
            Code::E0902 => "E0902",
            Code::E0951 => "E0951",
            Code::W0201 => "W0201",
            Code::W0401 => "W0401",
            Code::W0402 => "W0402",
            Code::W0501 => "W0501",
            Code::W0502 => "W0502",
            Code::W0801 => "W0801",
        }
    }

    /// The severity the code is reported with.
    pub fn severity(self) -> Severity {
        if self.as_str().starts_with('W') { Severity::Warning } else { Severity::Error }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl serde::Serialize for Code {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}
