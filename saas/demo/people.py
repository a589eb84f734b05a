"""Names for the demo tenant's people, companies and teams (fixed lists: deterministic)."""

TEAMS = ("North", "South", "Enterprise")
FIRST_NAMES = ("Maria", "Jonas", "Aisha", "Tomas", "Lena", "Omar", "Sofia", "Erik", "Yuki",
               "Pedro", "Nina", "Karim", "Elena", "David", "Ines", "Lukas", "Hana", "Marco",
               "Zoe", "Felix", "Amara", "Leo", "Clara", "Samir")
LAST_NAMES = ("Keller", "Novak", "Haddad", "Berg", "Silva", "Tanaka", "Rossi", "Meyer",
              "Costa", "Lindqvist", "Okafor", "Dubois", "Weber", "Moreau", "Nowak", "Jensen",
              "Fischer", "Santos", "Ibrahim", "Horvat")
COMPANIES = ("Acme Tools", "Brightline", "Cobalt Labs", "Delta Freight", "Evergreen Foods",
             "Fjord Energy", "Granite Bank", "Helix Health", "Ironwood", "Juniper Media",
             "Kestrel Air", "Lumen Retail", "Meridian Legal", "Northwind", "Orbit Systems",
             "Pinecrest Hotels", "Quanta Chem", "Riverside Clinic", "Summit Sports",
             "Tidewater Logistics", "Umbra Security", "Vertex Motors", "Willow Schools",
             "Zephyr Travel")
