package templates

// DevicesPage is the data of "devices.html": the devices the signed-in
// person signed in from, with rename and sign-out.
type DevicesPage struct {
	Username  string
	CSRFToken string
	Error     string
	Success   string
	Devices   []DeviceView
}

// DeviceView is one device on DevicesPage.
type DeviceView struct {
	ID        string
	Name      string // the person's name for it, or one made from UserAgent
	UserAgent string
	IP        string
	FirstSeen string
	LastSeen  string
	// Current marks the device this page is being viewed from.
	Current bool
}
